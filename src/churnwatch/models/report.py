"""Evaluation plots (PNG) and a self-contained HTML report a retention analyst can read."""

from __future__ import annotations

import base64
import html
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from churnwatch import optional
from churnwatch.plotting import plt

log = logging.getLogger(__name__)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(y: np.ndarray, p: np.ndarray, out: Path) -> Path:
    fpr, tpr, _ = roc_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(fpr, tpr, label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend(loc="lower right")
    return _save(fig, out / "roc.png")


def plot_pr(y: np.ndarray, p: np.ndarray, out: Path) -> Path:
    prec, rec, _ = precision_recall_curve(y, p)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(rec, prec, label="model")
    ax.axhline(float(np.mean(y)), ls="--", color="grey", label="base rate")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall")
    ax.legend(loc="upper right")
    return _save(fig, out / "pr.png")


def plot_calibration(y: np.ndarray, p: np.ndarray, out: Path) -> Path:
    frac, mean = calibration_curve(y, p, n_bins=8, strategy="quantile")
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(mean, frac, "o-", label="model")
    top = max(float(np.max(mean)), float(np.max(frac)), 0.05)
    ax.plot([0, top], [0, top], "--", color="grey", label="perfect")
    ax.set(xlabel="predicted probability", ylabel="observed churn rate", title="calibration")
    ax.legend(loc="upper left")
    return _save(fig, out / "calibration.png")


def plot_gains(y: np.ndarray, p: np.ndarray, out: Path) -> Path:
    order = np.argsort(-p, kind="stable")
    found = np.cumsum(y[order]) / max(float(np.sum(y)), 1.0)
    share = np.arange(1, len(y) + 1) / len(y)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.plot(share, found, label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.set(xlabel="share of users contacted", ylabel="share of churners found",
           title="cumulative gains")  # fmt: skip
    ax.legend(loc="lower right")
    return _save(fig, out / "gains.png")


def plot_importance(importance: pd.Series, out: Path, *, top: int = 15) -> Path:
    imp = importance.sort_values(ascending=True).tail(top)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(imp) + 1))
    ax.barh(imp.index, imp.to_numpy())
    ax.set(xlabel="mean |SHAP value| (model output units)", title="what drives the score")
    return _save(fig, out / "importance.png")


def plot_shap_summary(values: np.ndarray, frame: pd.DataFrame, out: Path) -> Path:
    """SHAP beeswarm: each dot a user, how far (and which way) a feature moved their score."""
    shap = optional.shap()
    # its own seeded generator: the dots' jitter is the same every run, and the global one is
    # neither read nor moved
    shap.summary_plot(values, frame, max_display=15, show=False, plot_size=(7, 6),
                      rng=np.random.default_rng(0))  # fmt: skip
    fig = plt.gcf()
    fig.suptitle("SHAP summary")
    return _save(fig, out / "shap_summary.png")


def html_report(
    title: str,
    summary: dict[str, str],
    tables: dict[str, pd.DataFrame],
    images: list[Path],
    out: Path,
) -> Path:
    """One HTML file with the figures embedded, readable without a server."""
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font:15px system-ui,sans-serif;max-width:1100px;margin:2em auto;"
        "padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}img{max-width:48%;margin:1%}</style>",
        f"<h1>{html.escape(title)}</h1><ul>",
        *[f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in summary.items()],
        "</ul>",
    ]
    for name, table in tables.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(table.to_html(index=False, float_format=lambda x: f"{x:.3f}"))
    parts.append("<h2>Figures</h2>")
    for img in images:
        data = base64.b64encode(img.read_bytes()).decode()
        parts.append(f"<img alt='{img.stem}' src='data:image/png;base64,{data}'>")
    path = out / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
