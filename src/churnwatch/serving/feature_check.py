"""The check of a feature payload against the served model's features."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from churnwatch.errors import InputError


class FeatureCheck:
    """A feature payload names only the model's features, with numbers for numeric ones
    (within the feature's `limits`: no negative count or rate, no share above 1) and strings
    for categories; missing ones (or null) are imputed as in training.

    Built once per model as a pydantic model, so the check runs in pydantic's compiled core.
    """

    def __init__(
        self,
        features: list[str],
        kinds: Mapping[str, str],
        limits: Mapping[str, tuple[float | None, float | None]] | None = None,
    ) -> None:
        self.limits = {f: (limits or {}).get(f, (None, None)) for f in features}
        fields: dict[str, Any] = {
            f: ((StrictStr | None) if kinds.get(f) == "category" else _number(*self.limits[f]),
                None)
            for f in features
        }  # fmt: skip
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
            if first["type"] in ("greater_than_equal", "less_than_equal"):
                raise InputError(
                    f"{where}feature {name!r} expected a number {_span(*self.limits[name])}, "
                    f"as the snapshots compute it. Got {first.get('input')!r}."
                ) from None
            kind = "a string" if "str" in first["type"] else "a finite number"
            raise InputError(
                f"{where}feature {name!r} expected {kind}. Got {first.get('input')!r}."
            ) from None


def _number(low: float | None, high: float | None) -> Any:
    if low is None and high is None:
        return StrictFloat | StrictInt | None
    limit = Field(ge=low, le=high)  # on each member: the OpenAPI schema then says minimum
    return Annotated[StrictFloat, limit] | Annotated[StrictInt, limit] | None


def _span(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"from {low:g} to {high:g}"
    return f">= {low:g}" if low is not None else f"<= {high:g}"


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
