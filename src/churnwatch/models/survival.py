"""Risk at any horizon and the time to churn, from the served P(churn within H days).

Read as a discrete-time model with a constant daily hazard per user, h = 1 - (1 - p)^(1/H),
the one probability answers the other questions: P(churn within t days) = 1 - (1 - p)^(t/H)
and the median days to churn, H ln(1/2) / ln(1 - p). The assumption is not trusted but judged
out of time (`bench/survival.py`): the time-dependent AUC at each horizon, and the integrated
Brier score against Kaplan-Meier curves by level, both with inverse-probability-of-censoring
weights (Uno et al. 2007; Graf et al. 1999).

Durations count days from the cutoff: an event on the cutoff's own day has duration 1, so
"churn within t days" is "duration <= t", as the snapshot label reads it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

HORIZONS = (7, 14, 30, 60)
MAX_DAYS = 3650  # a median beyond ten years reads as "not expected to churn"


def risk_at(p: np.ndarray, horizon_days: int, days: float) -> np.ndarray:
    """P(churn within `days`) for users whose P(churn within `horizon_days`) is `p`."""
    q = np.clip(np.asarray(p, dtype=float), 0.0, 1.0 - 1e-12)
    return np.asarray(1.0 - (1.0 - q) ** (days / horizon_days))


def median_days(p: np.ndarray, horizon_days: int) -> np.ndarray:
    """Days until the survival curve crosses one half (NaN beyond MAX_DAYS)."""
    q = np.clip(np.asarray(p, dtype=float), 1e-12, 1.0 - 1e-12)
    days = horizon_days * np.log(0.5) / np.log1p(-q)
    return np.where(days > MAX_DAYS, np.nan, days)


def survival_view(p: float, horizon_days: int) -> dict[str, float | None]:
    """One user's risk at the standard horizons and median days to churn."""
    out: dict[str, float | None] = {
        f"{h}d": float(risk_at(np.array([p]), horizon_days, h)[0]) for h in HORIZONS
    }
    m = float(median_days(np.array([p]), horizon_days)[0])
    out["median_days_to_churn"] = None if np.isnan(m) else m
    return out


def kaplan_meier(
    durations: np.ndarray, events: np.ndarray, entry: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Event times and the survival just after each (the product-limit estimate). With
    `entry`, each subject is at risk only after its entry time (delayed entry, for left
    truncation: a log that starts after its users signed up holds only those still there)."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    times = np.unique(d[e])
    at_risk = risk_set(d, times, entry).astype(float)
    deaths = np.array([(d[e] == t).sum() for t in times], dtype=float)
    return times, np.cumprod(1.0 - deaths / np.maximum(at_risk, 1.0))


def risk_set(
    durations: np.ndarray, times: Sequence[float] | np.ndarray, entry: np.ndarray | None = None
) -> np.ndarray:
    """How many subjects are at risk at each of `times`: still there (duration >= t) and,
    with `entry`, entered before t."""
    d = np.asarray(durations, dtype=float)
    start = np.zeros_like(d) if entry is None else np.asarray(entry, dtype=float)
    return np.array([int(((d >= t) & (start < t)).sum()) for t in times], dtype=int)


def step(times: np.ndarray, values: np.ndarray, at: np.ndarray | float) -> np.ndarray:
    """A right-continuous step function (1 before the first time) evaluated at `at`."""
    idx = np.searchsorted(times, np.asarray(at, dtype=float), side="right") - 1
    return np.where(idx >= 0, values[np.maximum(idx, 0)], 1.0)


def _censoring(durations: np.ndarray, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return kaplan_meier(durations, ~np.asarray(events, dtype=bool))


def brier_at(survival: np.ndarray, durations: np.ndarray, events: np.ndarray, t: float) -> float:
    """IPCW Brier score at `t` of predicted survival probabilities S_i(t)."""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    gt, gv = _censoring(d, e)
    g_own = np.maximum(step(gt, gv, d - 1e-9), 1e-6)  # G(T_i-)
    g_t = max(float(step(gt, gv, t)), 1e-6)
    died = (d <= t) & e
    alive = d > t
    s = np.asarray(survival, dtype=float)
    return float(
        np.mean(np.where(died, s**2 / g_own, 0.0) + np.where(alive, (1 - s) ** 2 / g_t, 0.0))
    )


def integrated_brier(
    survival_at: Sequence[np.ndarray], days: Sequence[int], durations: np.ndarray,
    events: np.ndarray,
) -> float:  # fmt: skip
    """The Brier score averaged over `days` (trapezoid rule), `survival_at[k]` being every
    user's S(days[k])."""
    scores = [brier_at(s, durations, events, t) for s, t in zip(survival_at, days, strict=True)]
    x = np.asarray(days, dtype=float)
    return float(np.trapezoid(scores, x) / (x[-1] - x[0]))


def auc_at(risk: np.ndarray, durations: np.ndarray, events: np.ndarray, t: float) -> float:
    """Cumulative/dynamic AUC at `t`: do users who churn by `t` (IPCW-weighted cases) rank
    above those still there after `t`?"""
    d = np.asarray(durations, dtype=float)
    e = np.asarray(events, dtype=bool)
    r = np.asarray(risk, dtype=float)
    gt, gv = _censoring(d, e)
    case = (d <= t) & e
    control = d > t
    if not case.any() or not control.any():
        return float("nan")
    w = 1.0 / np.maximum(step(gt, gv, d[case] - 1e-9), 1e-6)
    ctrl = np.sort(r[control])
    below = np.searchsorted(ctrl, r[case], side="left")
    ties = np.searchsorted(ctrl, r[case], side="right") - below
    wins = (below + 0.5 * ties) / len(ctrl)
    return float(np.sum(w * wins) / np.sum(w))


def durations(
    rows: pd.DataFrame, churn_day: pd.Series, data_end_day: int
) -> tuple[np.ndarray, np.ndarray]:
    """Days from each row's cutoff to its user's churn (event) or to the end of the data
    (censored). `rows`: user_id, cutoff_day; `churn_day`: the day of each churned user's
    cancellation, indexed by user."""
    day = rows["user_id"].map(churn_day).to_numpy(dtype=float)
    cut = rows["cutoff_day"].to_numpy(dtype=float)
    event = ~np.isnan(day) & (day >= cut)
    dur = np.where(event, day - cut + 1, data_end_day - cut + 1)
    return np.maximum(dur, 1.0), event
