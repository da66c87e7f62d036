"""The check of a feature payload against the served model's features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, StrictFloat, StrictInt, StrictStr, ValidationError, create_model

from churnwatch.errors import InputError


class FeatureCheck:
    """A feature payload names only the model's features, with numbers for numeric ones and
    strings for categories; missing ones (or null) are imputed as in training.

    Built once per model as a pydantic model, so the check runs in pydantic's compiled core.
    """

    def __init__(self, features: list[str], kinds: Mapping[str, str]) -> None:
        number = StrictFloat | StrictInt | None
        fields: dict[str, Any] = {
            f: ((StrictStr | None) if kinds.get(f) == "category" else number, None)
            for f in features
        }
        self.model = create_model(
            "Features", __config__=ConfigDict(extra="forbid", allow_inf_nan=False), **fields
        )

    def __call__(self, row: dict[str, Any], *, index: int | None = None) -> None:
        where = "" if index is None else f"rows[{index}]: "
        try:
            self.model.model_validate(row)
        except ValidationError as exc:
            first = exc.errors()[0]
            name = str(first["loc"][0]) if first["loc"] else "features"
            if first["type"] == "extra_forbidden":
                unknown = sorted(row.keys() - self.model.model_fields.keys())
                shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
                raise InputError(
                    f"{where}expected only the model's features (GET /model lists them). "
                    f"Got unknown {shown}."
                ) from None
            kind = "a string" if "str" in first["type"] else "a finite number"
            raise InputError(
                f"{where}feature {name!r} expected {kind}. Got {first.get('input')!r}."
            ) from None


# Indicators the snapshot SQL computes from a category (features/sparkify.py): a payload that
# gives the category but not the indicator gets it the same way, rather than imputed as typical.
INDICATORS = {"is_paid": ("level", "paid"), "is_male": ("gender", "M")}


def with_indicators(
    row: dict[str, Any], features: list[str], *, index: int | None = None
) -> dict[str, Any]:
    """`row` with each missing indicator of INDICATORS that the model uses derived from its
    category; an indicator given beside a category it contradicts is an error."""
    out = dict(row)
    where = "" if index is None else f"rows[{index}]: "
    for name, (category, value) in INDICATORS.items():
        given = row.get(category)
        if name not in features or given is None:
            continue
        derived = 1 if given == value else 0
        if out.get(name) is None:
            out[name] = derived
        elif out[name] != derived:
            raise InputError(
                f"{where}feature {name!r} expected {derived} with {category} {given!r}. "
                f"Got {out[name]!r}."
            )
    return out
