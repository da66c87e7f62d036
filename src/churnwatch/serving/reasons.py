"""SHAP contributions in plain words: "9 thumbs down in the last 7 days, 3.0x your usual rate".

Each feature's phrase is part of its catalog entry (`features.catalog`, built from
`features.phrases`); this module picks the features that move a user's risk most and reads them.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from churnwatch.features.catalog import FeatureSpec, by_name
from churnwatch.features.phrases import fmt


def describe(name: str, value: Any, row: Mapping[str, Any], spec: FeatureSpec | None = None) -> str:
    """One feature's value, in words, for the user whose features are `row` (features of the
    catalog of `spec`, default eventsim's)."""
    feature = by_name(spec).get(name)
    what = feature.description if feature else name
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{what}: not known, taken as typical"
    if isinstance(value, str) and (feature is None or feature.kind != "category"):
        return f"{what}: {value}"
    if feature is None or feature.phrase is None:
        return f"{what}: {value if isinstance(value, str) else fmt(float(value))}"
    return feature.phrase(value, row)


def top_reasons(
    features: Sequence[str],
    row: Mapping[str, Any],
    contributions: np.ndarray,
    *,
    k: int = 5,
    allowed: Collection[str] | None = None,
    spec: FeatureSpec | None = None,
    typical: Mapping[str, float] | None = None,
) -> list[dict[str, Any]]:
    """The k features that raise this user's risk most, largest first; when fewer than k
    raise it, the ones that lower it most follow. Only `allowed` features (default: all) are
    given: the model's features whose effect was stable across the backtest. A rate over the
    whole history is set against `typical[name]` (the median of the rows the model learnt
    from), as a windowed one is against the user's own usual rate."""
    ok = set(features if allowed is None else allowed)
    keep = [j for j in range(len(features)) if features[j] in ok]
    up = [j for j in sorted(keep, key=lambda j: -contributions[j]) if contributions[j] > 0]
    down = [j for j in sorted(keep, key=lambda j: contributions[j]) if contributions[j] < 0]
    out = []
    for j in (up + down)[:k]:
        c = float(contributions[j])
        name = features[j]
        value = row.get(name)
        if isinstance(value, float) and math.isnan(value):
            value = None
        out.append(
            {
                "feature": name,
                "value": value if not isinstance(value, np.generic) else value.item(),
                "contribution": c,
                "direction": "raises risk" if c > 0 else "lowers risk",
                "text": _against_typical(
                    describe(name, value, row, spec), name, value, spec, typical or {}
                ),
            }
        )
    return out


def _against_typical(
    text: str, name: str, value: Any, spec: FeatureSpec | None, typical: Mapping[str, float]
) -> str:
    feature = by_name(spec).get(name)
    usual = typical.get(name)
    if feature is None or feature.kind != "rate" or feature.window != "all":
        return text
    if value is None or usual is None or not math.isfinite(usual):
        return text
    return f"{text}; typical user {fmt(usual)}"
