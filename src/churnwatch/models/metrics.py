"""Metrics for an imbalanced churn label, with bootstrap intervals over users.

Rows of one user at several cutoffs are not independent, so intervals resample users (all of a
user's rows together), not rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

Metric = Callable[[np.ndarray, np.ndarray], float]

# The metrics are computed with NumPy from one descending sort of the scores: they equal
# scikit-learn's (roc_auc_score, average_precision_score, brier_score_loss, log_loss,
# accuracy_score, f1_score; a test holds them to it) without its input checks, which cost more
# than the metric itself in a bootstrap of thousands of resamples.


def _top_k(n: int) -> int:
    """How many rows the top decile holds (at least one)."""
    return max(1, int(np.ceil(0.1 * n)))


def _ranking(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """ROC-AUC, average precision, and lift and recall in the top decile, from one sort (ties
    in the top decile broken by row order, as a stable sort leaves them)."""
    order = np.argsort(-s, kind="stable")
    ys = y[order]
    positives = float(ys.sum())
    negatives = len(ys) - positives
    top = float(ys[: _top_k(len(ys))].sum())
    out = {
        "lift_top10": top / _top_k(len(ys)) / (positives / len(ys)) if positives else np.nan,
        "recall_top10": top / positives if positives else np.nan,
        "roc_auc": np.nan,
        "pr_auc": np.nan,
    }
    if positives == 0 or negatives == 0:
        return out
    ss = s[order]
    ends = np.r_[np.flatnonzero(ss[1:] != ss[:-1]), len(ss) - 1]  # last row of each tie group
    tps = np.cumsum(ys)[ends]
    fps = ends + 1 - tps
    pos_g = np.diff(tps, prepend=0.0)
    neg_g = np.diff(fps, prepend=0.0)
    # each positive beats the negatives scored below its group and half of those tied with it
    beaten = np.sum(pos_g * (negatives - fps + 0.5 * neg_g))
    out["roc_auc"] = float(beaten / (positives * negatives))
    out["pr_auc"] = float(np.sum(pos_g / positives * (tps / (tps + fps))))
    return out


def _ranking_metric(name: str) -> Metric:
    def metric(y: np.ndarray, s: np.ndarray) -> float:
        return _ranking(np.asarray(y, dtype=float), np.asarray(s, dtype=float))[name]

    metric.__name__ = name
    return metric


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Churn rate among the 10 % highest scores, divided by the overall churn rate."""
    return _ranking_metric("lift_top10")(y, p)


def top_decile_recall(y: np.ndarray, p: np.ndarray) -> float:
    """Share of all churners found among the 10 % highest scores."""
    return _ranking_metric("recall_top10")(y, p)


def brier(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean((np.asarray(p, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    yy = np.asarray(y, dtype=float)
    return float(-np.mean(yy * np.log(q) + (1 - yy) * np.log1p(-q)))


SCORE_METRICS: dict[str, Metric] = {
    "roc_auc": _ranking_metric("roc_auc"),
    "pr_auc": _ranking_metric("pr_auc"),
    "brier": brier,
    "log_loss": log_loss,
    "lift_top10": top_decile_lift,
    "recall_top10": top_decile_recall,
}


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy and F1 of the decision p >= threshold (F1 is 0 when nothing is predicted and
    nothing is positive)."""
    yy = np.asarray(y) == 1
    pred = np.asarray(p, dtype=float) >= threshold
    tp = float(np.sum(pred & yy))
    wrong = float(np.sum(pred != yy))
    return {
        "accuracy": float(1 - wrong / len(yy)),
        "f1": 2 * tp / (2 * tp + wrong) if tp or wrong else 0.0,
    }


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


RANKING = ("roc_auc", "pr_auc", "lift_top10", "recall_top10")


def _draws(n_users: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """The users (indices into the sorted unique ids) each of `n_boot` resamples draws, with
    replacement: the one source of `user_resamples` and `user_weights`, so both see the same
    resamples for the same seed."""
    rng = np.random.default_rng(seed)
    for _ in range(n_boot):
        yield rng.integers(0, n_users, n_users)


def user_resamples(users: np.ndarray, *, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Row indices of `n_boot` bootstrap resamples of the users (drawn with replacement), each
    drawn user bringing all their rows: the resampling behind every interval over users."""
    uniq, inverse = np.unique(np.asarray(users), return_inverse=True)
    by_user = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[by_user], np.arange(len(uniq) + 1))
    rows_of = [by_user[bounds[i] : bounds[i + 1]] for i in range(len(uniq))]
    for pick in _draws(len(uniq), n_boot, seed):
        yield np.concatenate([rows_of[i] for i in pick])


def user_weights(
    users: np.ndarray, *, n_boot: int, seed: int, chunk: int = 250
) -> Iterator[np.ndarray]:
    """The resamples of `user_resamples` (the same draws for the same seed) as row weights:
    arrays of up to `chunk` resamples x rows, each row weighted by how many times its user was
    drawn. A metric that takes weights then scores many resamples in one NumPy pass."""
    uniq, inverse = np.unique(np.asarray(users), return_inverse=True)
    draws = _draws(len(uniq), n_boot, seed)
    for start in range(0, n_boot, chunk):
        picks = itertools.islice(draws, min(chunk, n_boot - start))
        counts = np.stack([np.bincount(d, minlength=len(uniq)) for d in picks])
        yield counts[:, inverse].astype(float)


def tie_groups(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ascending order of scores `s`, and where each group of tied scores starts in it."""
    order = np.argsort(s, kind="stable")
    ss = np.asarray(s, dtype=float)[order]
    return order, np.r_[0, np.flatnonzero(ss[1:] != ss[:-1]) + 1]


def weighted_roc_auc(
    y: np.ndarray,
    s: np.ndarray,
    weights: np.ndarray,
    groups: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """ROC-AUC of scores `s` (ties count half) under each row of `weights` (resamples x rows,
    a row's multiplicity in the resample): equal to the ROC-AUC of the rows repeated that many
    times. NaN where a resample has no churner or no non-churner. `groups` is `tie_groups(s)`,
    for a caller that scores the same `s` under many weights."""
    y = np.asarray(y, dtype=float)
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    if len(y) == 0:
        return np.full(len(weights), np.nan)
    order, starts = groups or tie_groups(s)  # ascending: a group beats the negatives before it
    w, yo = weights[:, order], y[order]
    pos = np.add.reduceat(w * yo, starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - yo), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    beaten = np.sum(pos * (below + 0.5 * neg), axis=1)
    pairs = pos.sum(axis=1) * neg.sum(axis=1)
    out = np.full(len(weights), np.nan)
    np.divide(beaten, pairs, out=out, where=pairs > 0)
    return out


def evaluate_scores(
    y: np.ndarray,
    p: np.ndarray,
    users: np.ndarray,
    *,
    threshold: float,
    ranking: np.ndarray | None = None,
    n_boot: int = 300,
    seed: int = 0,
) -> dict[str, Estimate]:
    """Every metric with a 95 % bootstrap interval over users.

    `p` are probabilities (Brier, log loss, accuracy and F1 at `threshold` use them); the
    ranking metrics (ROC-AUC, PR-AUC, lift and recall in the top decile) use `ranking` when
    given, the model's raw scores, so that a calibration step cannot blur them.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    r = p if ranking is None else np.asarray(ranking, dtype=float)

    def compute(idx: np.ndarray | slice) -> dict[str, float]:
        yy, pp = y[idx], p[idx]
        out = {**_ranking(yy, r[idx]), "brier": brier(yy, pp), "log_loss": log_loss(yy, pp)}
        return {**out, **threshold_metrics(yy, pp, threshold)}

    point = compute(slice(None))
    metrics = [*SCORE_METRICS, "accuracy", "f1"]
    draws: dict[str, list[float]] = {name: [] for name in metrics}
    for idx in user_resamples(users, n_boot=n_boot, seed=seed):
        drawn = compute(idx)
        for name in metrics:
            draws[name].append(drawn[name])
    out = {}
    for name in metrics:
        vals = np.asarray(draws[name], dtype=float)
        vals = vals[~np.isnan(vals)]
        low, high = np.percentile(vals, [2.5, 97.5]) if len(vals) else (np.nan, np.nan)
        out[name] = Estimate(point[name], float(low), float(high))
    return out


def oracle_metrics(
    rows: pd.DataFrame, scores: np.ndarray, truths: list[Path], *, horizon_days: int
) -> dict[str, float]:
    """ROC-AUC and PR-AUC of the simulator's true hazard on labelled snapshot `rows`, and the
    ratio of the model's (`scores`, aligned with `rows`) to them. The oracle scores each
    (user, cutoff) with 1 - (1 - h)^H, h the true daily hazard on the cutoff day (known from
    the state at the cutoff), H the horizon. Empty when the truth does not cover the rows."""
    truth = pd.concat([pd.read_parquet(t, columns=["user_id", "date", "hazard"]) for t in truths])
    frame = rows[["user_id", "label"]].assign(
        cutoff_date=rows["cutoff"].dt.date, model=np.asarray(scores)
    )
    merged = frame.merge(truth, left_on=["user_id", "cutoff_date"], right_on=["user_id", "date"])
    if len(merged) < 0.9 * len(frame) or merged["label"].nunique() < 2:
        return {}
    y = merged["label"].astype(int).to_numpy()
    oracle = 1 - (1 - merged["hazard"].to_numpy()) ** horizon_days
    out: dict[str, float] = {}
    for k in ("roc_auc", "pr_auc"):
        out[f"oracle_{k}"] = SCORE_METRICS[k](y, oracle)
        out[f"model_to_oracle_{k}"] = (
            SCORE_METRICS[k](y, merged["model"].to_numpy()) / out[f"oracle_{k}"]
        )
    return out
