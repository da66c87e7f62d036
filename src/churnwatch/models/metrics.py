"""Metrics for an imbalanced churn label, with bootstrap intervals over users.

Rows of one user at several cutoffs are not independent, so intervals resample users (all of a
user's rows together), not rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
)

Metric = Callable[[np.ndarray, np.ndarray], float]


def _top_decile(p: np.ndarray) -> np.ndarray:
    """Indices of the 10 % highest scores (at least one)."""
    k = max(1, int(np.ceil(0.1 * len(p))))
    return np.argsort(-p, kind="stable")[:k]


def top_decile_lift(y: np.ndarray, p: np.ndarray) -> float:
    """Churn rate among the 10 % highest scores, divided by the overall churn rate."""
    base = float(np.mean(y))
    return float(np.mean(y[_top_decile(p)]) / base) if base else float("nan")


def top_decile_recall(y: np.ndarray, p: np.ndarray) -> float:
    """Share of all churners found among the 10 % highest scores."""
    positives = float(np.sum(y))
    return float(np.sum(y[_top_decile(p)]) / positives) if positives else float("nan")


def _safe(fn: Metric) -> Metric:
    def wrapped(y: np.ndarray, p: np.ndarray) -> float:
        if len(np.unique(y)) < 2:
            return float("nan")
        return float(fn(y, p))

    return wrapped


SCORE_METRICS: dict[str, Metric] = {
    "roc_auc": _safe(roc_auc_score),
    "pr_auc": _safe(average_precision_score),
    "brier": lambda y, p: float(brier_score_loss(y, p)),
    "log_loss": lambda y, p: float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6), labels=[0, 1])),
    "lift_top10": top_decile_lift,
    "recall_top10": top_decile_recall,
}


def threshold_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, float]:
    pred = (p >= threshold).astype(int)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "f1": float(f1_score(y, pred, zero_division=0)),
    }


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


RANKING = ("roc_auc", "pr_auc", "lift_top10", "recall_top10")


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
    y = np.asarray(y, dtype=int)
    p = np.asarray(p, dtype=float)
    r = p if ranking is None else np.asarray(ranking, dtype=float)
    metrics: dict[str, Metric] = {
        **SCORE_METRICS,
        "accuracy": lambda yy, pp: threshold_metrics(yy, pp, threshold)["accuracy"],
        "f1": lambda yy, pp: threshold_metrics(yy, pp, threshold)["f1"],
    }

    def compute(name: str, idx: np.ndarray | slice) -> float:
        scores = r if name in RANKING else p
        return metrics[name](y[idx], scores[idx])

    point = {name: compute(name, slice(None)) for name in metrics}
    uniq, inverse = np.unique(np.asarray(users), return_inverse=True)
    rows_of = [np.flatnonzero(inverse == i) for i in range(len(uniq))]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in metrics}
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        idx = np.concatenate([rows_of[i] for i in pick])
        for name in metrics:
            draws[name].append(compute(name, idx))
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
