"""Which features may be given as reasons: those whose effect is stable across backtest folds.

A feature's effect in one fold is measured on that fold's model, fitted on the fold's past: the
mean change of the predicted probability when the feature alone is moved from its 25th to its
75th percentile among the fold's evaluated users (10th to 90th when those are equal), every
other feature kept as it is. A feature is stable when its effect has the same sign in every
fold and is never negligible. A reason whose direction flips from one period to the next is
noise that happens to be large for one user, not something a retention team can act on.

Categorical features (state, browser, ...) are never reasons of a model that has a stability
list: the level and gender they repeat are numeric features of their own (`is_paid`,
`is_male`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churnwatch.models.estimators import NOT_FEATURES

SAMPLE = 300  # evaluated rows per fold the effect is averaged over
CHUNK = 20  # features moved per prediction call
NEGLIGIBLE = 1e-4  # an effect below this (in probability) counts as none


def used_columns(estimator: Any) -> set[str] | None:
    """The input columns a fitted pipeline reads (None when it cannot be told)."""
    inner = getattr(estimator, "estimator", None)  # a Calibrated model
    if inner is not None and hasattr(estimator, "predict_scores"):
        return used_columns(inner)
    members = getattr(estimator, "members_", None)  # an ensemble
    if members is not None:
        sets = [used_columns(m) for m in members]
        return None if any(s is None for s in sets) else set().union(*sets)  # type: ignore[arg-type]
    steps = getattr(estimator, "steps", None)
    if steps:
        if len(steps) == 1:
            return used_columns(steps[0][1])
        pre = steps[0][1]
        blocks = getattr(pre, "transformers_", None)
        if blocks is None:
            return None
        out: set[str] = set()
        for name, _, cols in blocks:
            if name != "remainder":
                out |= {str(c) for c in cols}
        return out
    return None


def fold_effects(model: Any, rows: pd.DataFrame, *, seed: int = 0) -> dict[str, float]:
    """Each numeric input's mean effect on the probability, in one fold (see the module)."""
    used = used_columns(model)
    names = [
        c for c in rows.columns if c not in NOT_FEATURES and pd.api.types.is_numeric_dtype(rows[c])
    ]
    if used is not None:
        names = [c for c in names if c in used]
    rng = np.random.default_rng(seed)
    sample = rows.iloc[rng.permutation(len(rows))[:SAMPLE]].reset_index(drop=True)
    moves: list[tuple[str, float, float]] = []
    for c in names:
        v = pd.to_numeric(sample[c], errors="coerce").dropna().to_numpy(dtype=float)
        if len(v) == 0:
            continue
        lo, hi = np.quantile(v, [0.25, 0.75])
        if lo == hi:
            lo, hi = np.quantile(v, [0.1, 0.9])
        if lo < hi:
            moves.append((c, float(lo), float(hi)))
    effects = dict.fromkeys(names, 0.0)
    n = len(sample)
    for start in range(0, len(moves), CHUNK):
        part = moves[start : start + CHUNK]
        frames = []
        for c, lo, hi in part:
            for value in (lo, hi):
                frames.append(sample.assign(**{c: value}))
        p = model.predict_proba(pd.concat(frames, ignore_index=True))[:, 1]
        for i, (c, _, _) in enumerate(part):
            low, high = p[2 * i * n : (2 * i + 1) * n], p[(2 * i + 1) * n : (2 * i + 2) * n]
            effects[c] = float(np.mean(high - low))
    return effects


def stable_features(per_fold: Sequence[dict[str, float]]) -> list[str]:
    """The features whose effect has one sign in every fold, never negligible, in the column
    order of the first fold."""
    if not per_fold:
        return []
    out = []
    for name in per_fold[0]:
        values = np.array([f.get(name, 0.0) for f in per_fold])
        if np.all(np.abs(values) > NEGLIGIBLE) and len(np.unique(np.sign(values))) == 1:
            out.append(name)
    return out
