"""Realised performance as labels mature, and a label-free estimate before they do.

Every monitoring run logs the scores it gave (user, cutoff, model version) in the store's
`monitoring/predictions/`. Once a cutoff's horizon has passed, its users' labels are known;
the cohort is then judged with the scores the model live at the time gave, not with today's
model. Until then, the calibrated scores themselves give an estimate (confidence-based
performance estimation, NannyML's CBPE): a user with probability p counts as p of a churner.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churnwatch.ingest.store import EventStore
from churnwatch.models.metrics import SCORE_METRICS

PREDICTIONS = Path("monitoring") / "predictions"


def log_predictions(store: EventStore, scores: pd.DataFrame, version: str) -> Path:
    """Keep `scores` (user_id, cutoff, probability) given by model `version`; a second run
    for the same cutoff and version replaces the first."""
    folder = store.root / PREDICTIONS
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = pd.Timestamp(scores["cutoff"].iloc[0])
    out = scores[["user_id", "cutoff", "probability"]].copy()
    out["model_version"] = str(version)
    out["logged_at"] = pd.Timestamp.now(tz="UTC")
    path = folder / f"{cutoff:%Y-%m-%d}_v{version}.parquet"
    tmp = path.with_suffix(".tmp")
    out.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def read_predictions(store: EventStore) -> pd.DataFrame:
    folder = store.root / PREDICTIONS
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        cols = ["user_id", "cutoff", "probability", "model_version", "logged_at"]
        return pd.DataFrame(columns=cols)
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def expected_roc_auc(p: np.ndarray) -> float:
    """ROC-AUC expected if each user churns with their calibrated probability."""
    p = np.sort(np.asarray(p, dtype=float))[::-1]
    pos, neg = p.sum(), (1 - p).sum()
    if pos <= 0 or neg <= 0:
        return float("nan")
    tpr = np.concatenate([[0.0], np.cumsum(p) / pos])
    fpr = np.concatenate([[0.0], np.cumsum(1 - p) / neg])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def expected_pr_auc(p: np.ndarray) -> float:
    """Average precision expected under the same assumption."""
    p = np.sort(np.asarray(p, dtype=float))[::-1]
    total = p.sum()
    if total <= 0:
        return float("nan")
    tp = np.cumsum(p)
    precision = tp / np.arange(1, len(p) + 1)
    return float(np.sum(p / total * precision))


def cohort_metrics(
    predictions: pd.DataFrame, labels: pd.DataFrame, *, data_end: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """One row per (cutoff, model version): realised metrics where the horizon has passed,
    CBPE estimates everywhere."""
    if predictions.empty:
        return pd.DataFrame()
    preds = predictions.copy()
    preds["cutoff"] = pd.to_datetime(preds["cutoff"], utc=True)
    lab = labels[["user_id", "cutoff", "label"]].copy()
    lab["cutoff"] = pd.to_datetime(lab["cutoff"], utc=True)
    joined = preds.merge(lab, on=["user_id", "cutoff"], how="left")
    rows = []
    for (cutoff, version), g in joined.groupby(["cutoff", "model_version"], sort=True):
        matured = pd.Timestamp(cutoff) + pd.Timedelta(days=horizon_days) <= data_end  # type: ignore[arg-type]
        known = g[g["label"].notna()]
        row = {
            "cutoff": cutoff,
            "model_version": version,
            "users": len(g),
            "matured": bool(matured and len(known) > 0),
            "estimated_roc_auc": expected_roc_auc(g["probability"].to_numpy()),
            "estimated_pr_auc": expected_pr_auc(g["probability"].to_numpy()),
            "mean_probability": float(g["probability"].mean()),
        }
        if row["matured"]:
            y = known["label"].to_numpy(dtype=int)
            p = known["probability"].to_numpy(dtype=float)
            row["churners"] = int(y.sum())
            row["churn_rate"] = float(y.mean())
            for name in ("roc_auc", "pr_auc", "lift_top10", "brier"):
                row[name] = float(SCORE_METRICS[name](y, p))
        rows.append(row)
    return pd.DataFrame(rows)
