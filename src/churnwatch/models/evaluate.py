"""Evaluate a registered model on any log: metrics per cutoff and pooled, plots, a report."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import classification_report

from churnwatch import optional
from churnwatch.config import Settings
from churnwatch.db import connect, event_files
from churnwatch.errors import InputError, NoValidRowsError
from churnwatch.features import build_snapshots
from churnwatch.ingest import EventStore, IngestReport, ingest
from churnwatch.labels import unlearnable
from churnwatch.models import report
from churnwatch.models.metrics import (
    SCORE_METRICS,
    evaluate_scores,
    oracle_metrics,
    threshold_metrics,
)
from churnwatch.recipe import Recipe
from churnwatch.schema import ColumnMapping
from churnwatch.simulate import truth_path

log = logging.getLogger(__name__)


@dataclass
class Evaluation:
    pooled: dict[str, dict[str, float]]
    oracle: dict[str, float]
    per_cutoff: list[dict[str, Any]]
    classification_report: str
    threshold: float
    rows: int
    positives: int
    metrics_path: Path
    report_path: Path
    images: list[Path]
    recipe: Recipe  # what the labels and cutoffs followed
    recipe_source: str  # "the model's recipe", or what was overridden
    by_history: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    # labelled rows of users and cutoffs the model learnt from (the log overlaps its training
    # store before its last label ends): their figures are in-sample
    in_sample: int = 0
    learnt: Learnt | None = None
    # how the logs read: lines, events, guests, rows quarantined (by reason) and where they are
    read: dict[str, Any] = dataclasses.field(default_factory=dict)
    labelled: str = ""  # "N labelled snapshots of U users, C of whom churned"


@dataclass(frozen=True)
class Learnt:
    """What a model learnt from: its training store and the day its last label ends."""

    store: Path
    labels_until: date

    def describe(self) -> str:
        return f"its training store {self.store}, labels to {self.labels_until}"


def label_overlaps(cutoffs: Any, until: date | None) -> np.ndarray:
    """Which rows a model whose learnt labels end on `until` is not out of time on: those
    whose horizon starts before that day. A cancellation on or before `until` was a positive
    label at one of the model's training cutoffs, so a row whose horizon covers it repeats
    what the model learnt even when the horizon ends after `until`. Rows from `until` on are
    out of time; with no `until` (unknown), every row is."""
    days = pd.to_datetime(pd.Series(cutoffs)).dt.date.to_numpy()
    if until is None:
        return np.zeros(len(days), dtype=bool)
    return np.asarray(days < until, dtype=bool)


def counted(rows: pd.DataFrame) -> str:
    """Labelled snapshots, with each user and each churner counted once: a user is in every
    cutoff they were active at, and a churner is labelled at each cutoff whose horizon holds the
    churn (two, weekly over 14 days)."""
    users = rows["user_id"].nunique()
    churners = rows.loc[rows["label"].astype(bool), "user_id"].nunique()
    return f"{len(rows):,} labelled snapshots of {users:,} users, {churners:,} of whom churned"


def inner_pipeline(churn_model: Any) -> Any:
    """The fitted scikit-learn pipeline inside a ChurnModel (under its calibration)."""
    est = churn_model.estimator
    return getattr(est, "estimator", est)  # Calibrated -> pipeline


def shap_values(pipeline: Any, X: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame] | None:
    """SHAP values of the pipeline's model on its transformed input, in the model's output
    units (log-odds for boosted trees and logistic regression, probability for the random
    forest), for tree and linear models; None for others."""
    shap = optional.shap()
    steps = getattr(pipeline, "steps", None)
    if not steps or len(steps) < 2:
        return None
    pre, model = pipeline[:-1], pipeline[-1]
    model = getattr(model, "booster_", model)  # MonotoneBooster -> the booster
    Xt = pre.transform(X)
    Xt = Xt.toarray() if hasattr(Xt, "toarray") else np.asarray(Xt, dtype=float)
    names = list(pre.get_feature_names_out())
    kind = type(model).__name__
    if kind in ("RandomForestClassifier", "XGBClassifier", "LGBMClassifier"):
        values = shap.TreeExplainer(model).shap_values(Xt)
    elif kind == "LogisticRegression":
        values = shap.LinearExplainer(model, Xt).shap_values(Xt)
    else:
        return None
    values = np.asarray(values)
    if values.ndim == 3:  # (rows, features, classes)
        values = values[:, :, 1]
    return values, pd.DataFrame(Xt, columns=names)


def evaluate_model(
    churn_model: Any,
    recipe: Recipe,
    data: Sequence[str],
    *,
    name: str,
    out_dir: Path,
    settings: Settings,
    horizon_days: int | None = None,
    every_days: int | None = None,
    n_boot: int = 300,
    learnt: Learnt | None = None,
    mapping: ColumnMapping | None = None,
) -> Evaluation:
    """Ingest `data` into a temporary store, score its labelled snapshots with `churn_model`
    (a ChurnModel; `name` says which in the report), report. Labels and cutoffs follow the
    model's `recipe`; `horizon_days` and `every_days` override it. With `learnt` (what the
    model learnt from), rows of users and cutoffs it learnt are counted and reported. The
    logs are read with `mapping` (default: eventsim's names)."""
    recipe, source = _overridden(recipe, horizon_days, every_days)
    lab, seen_users, read = _labelled(data, recipe, settings, out_dir, learnt, mapping)
    in_sample = 0
    if learnt is not None and seen_users:
        overlap = label_overlaps(lab["cutoff"], learnt.labels_until)
        in_sample = int((lab["user_id"].astype(str).isin(seen_users).to_numpy() & overlap).sum())
    y = lab["label"].astype(int).to_numpy()
    p = np.asarray(churn_model.predict(None, lab), dtype=float)
    thr = float(churn_model.threshold)
    scores = evaluate_scores(y, p, lab["user_id"].to_numpy(), threshold=thr, n_boot=n_boot)
    pooled = {k: v.as_dict() for k, v in scores.items()}
    per_cutoff = _per_cutoff(lab, y, p, thr)
    by_history = history_bands(lab, y, p, thr, n_boot=n_boot)
    text = classification_report(y, (p >= thr).astype(int), digits=3, zero_division=0)
    out_dir.mkdir(parents=True, exist_ok=True)
    images, importance = _figures(churn_model, lab, y, p, out_dir)
    labels = f"{recipe.describe()} ({source})"
    labelled = counted(lab)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps({
        "model": name, "recipe": recipe.to_dict(), "labels": labels, "threshold": thr,
        "pooled": pooled, "per_cutoff": per_cutoff, "by_history": by_history,
        "in_sample_rows": in_sample, "read": read, "labelled": labelled,
        "top_features": {} if importance is None else importance.head(20).to_dict(),
    }, indent=1, default=float))  # fmt: skip
    truths = [truth_path(Path(d)) for d in data if truth_path(Path(d)).is_file()]
    horizon = recipe.definition.horizon_days
    oracle = oracle_metrics(lab, p, truths, horizon_days=horizon) if truths else {}
    facts = {
        "data": ", ".join(map(str, data)),
        **({"read with": _mapping_text(mapping)} if mapping and mapping.to_record() else {}),
        "read": read_text(read),
        "labels": labels,
        "labelled": f"{labelled} ({int(y.sum()):,} snapshots labelled churn)",
        "threshold": f"{thr:.3f}",
        **({"in-sample": in_sample_warning(in_sample, len(lab), learnt)} if in_sample else {}),
        **oracle_line(oracle),
        "how to read": "ROC-AUC and PR-AUC rank users; lift@10% is how many times more "
        "churners the top decile holds than a random tenth; Brier and the calibration "
        "plot say whether the probabilities can be read as probabilities.",
    }
    pooled_table = pd.DataFrame(
        [
            {"metric": k, "value": v["value"], "95% low": v["low"], "95% high": v["high"]}
            for k, v in pooled.items()
        ]  # fmt: skip
    )
    tables = {"pooled (95% bootstrap intervals over users)": pooled_table,
              "by days observed at the cutoff (the predicted and the observed churn rate "
              "should agree in every band)": pd.DataFrame(by_history),
              "per cutoff": pd.DataFrame(per_cutoff)}  # fmt: skip
    report_path = report.html_report(
        f"churnwatch evaluation of {name}", facts, tables, images, out_dir
    )
    return Evaluation(pooled, oracle, per_cutoff, text, thr, len(lab), int(y.sum()), metrics_path,
                      report_path, images, recipe, source, by_history, in_sample,
                      learnt, read, labelled)  # fmt: skip


def _mapping_text(mapping: ColumnMapping) -> str:
    """A column mapping as the ingest options that give it: "--map user_id=customer ..."."""
    record = mapping.to_record()
    parts = [f"--map {k}={v}" for k, v in record.pop("columns", {}).items()]
    parts += [f"--{k.replace('_', '-')} {v}" for k, v in record.items()]
    return " ".join(parts)


def in_sample_warning(rows: int, total: int, learnt: Learnt | None) -> str:
    """What to say when evaluated rows are ones the model learnt from."""
    where = f" ({learnt.describe()})" if learnt else ""
    return (
        f"{rows:,} of {total:,} labelled snapshots ({rows / total:.0%}) are of users the model "
        f"learnt from, at cutoffs before its labels end{where}: their figures are in-sample. "
        "The out-of-time figures are train's backtest; evaluate a log the model never saw."
    )


def _overridden(
    recipe: Recipe, horizon_days: int | None, every_days: int | None
) -> tuple[Recipe, str]:
    """The recipe with the horizon and period the user asked for, and how to say so."""
    overrides = {k: v for k, v in (("horizon", horizon_days), ("every", every_days)) if v}
    source = "the model's recipe" + (
        ", overridden: " + ", ".join(f"{k}={v}" for k, v in overrides.items()) if overrides else ""
    )
    definition = dataclasses.replace(
        recipe.definition, horizon_days=horizon_days or recipe.definition.horizon_days
    )
    every = every_days or recipe.every_days
    return dataclasses.replace(recipe, definition=definition, every_days=every), source


def read_text(read: dict[str, Any]) -> str:
    """How the logs read, in a line: '263,012 lines: 262,000 events, 1,010 guest events, 2
    quarantined (invalid_json 1, ts_out_of_range 1), kept in out/quarantine.jsonl'."""
    text = (
        f"{read['lines_read']:,} lines: {read['valid']:,} events, {read['guests']:,} guest "
        f"events, {read['quarantined']:,} quarantined"
    )
    if read["quarantined_by_reason"]:
        text += " (" + ", ".join(f"{k} {v:,}" for k, v in read["quarantined_by_reason"].items())
        text += ")"
    if read["file_problems"]:
        text += f", {read['file_problems']:,} file problem(s)"
    return text + (f", kept in {read['quarantine_file']}" if read["quarantine_file"] else "")


def _kept(quarantine_file: str | None, out_dir: Path) -> Path | None:
    """The rows an ingest into a temporary store rejected, copied to `out_dir` (the store goes
    when the evaluation ends); an older run's copy is removed when none were rejected."""
    kept = out_dir / "quarantine.jsonl"
    if not quarantine_file:
        kept.unlink(missing_ok=True)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(quarantine_file, kept)
    return kept


def _read(report: IngestReport, kept: Path | None) -> dict[str, Any]:
    return {
        "lines_read": report.lines_read, "valid": report.valid, "guests": report.guests,
        "quarantined": report.quarantined,
        "quarantined_by_reason": dict(report.quarantined_by_reason),
        "file_problems": len(report.file_problems),
        "file_problem_details": [p["detail"] for p in report.file_problems],
        "quarantine_file": None if kept is None else str(kept),
    }  # fmt: skip


def _labelled(
    data: Sequence[str],
    recipe: Recipe,
    settings: Settings,
    out_dir: Path,
    learnt: Learnt | None = None,
    mapping: ColumnMapping | None = None,
) -> tuple[pd.DataFrame, set[str], dict[str, Any]]:
    """The labelled snapshots of logs `data`, ingested into a temporary store; the users with
    events the model's training store holds from before its last label ended; how the logs
    read (the rows they had rejected are kept in `out_dir`)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(Path(tmp) / "store")
        try:
            ingested = ingest(list(data), settings=settings, store_dir=store.root,
                              mapping=mapping)  # fmt: skip
        except NoValidRowsError as exc:  # say where its rejected rows are kept, not the temp
            kept = _kept(exc.quarantine_file, out_dir)
            if kept is None or exc.quarantine_file is None:
                raise
            error = NoValidRowsError(str(exc).replace(exc.quarantine_file, str(kept)))
            error.quarantine_file = str(kept)
            raise error from None
        read = _read(ingested, _kept(ingested.quarantine_file, out_dir))
        table, _ = build_snapshots(
            store, definition=recipe.definition,
            schedule=recipe.schedule, settings=settings, spec=recipe.spec,
        )  # fmt: skip
        users = learnt_users(store, learnt, settings) if learnt is not None else set()
        df = table.to_pandas()
        why = unlearnable(
            df["cutoff"], df["label"], recipe.definition, store.last_event(), store.holds_page
        )
    if why:
        raise InputError(why)
    lab: pd.DataFrame = df[df["label"].notna()].reset_index(drop=True)
    return lab, users, read


def learnt_users(store: EventStore, learnt: Learnt, settings: Settings) -> set[str]:
    """Users of `store` with events (the same event ids) that the model's training store holds
    from before its last label ended. Empty when that store is not here."""
    trained = EventStore(learnt.store)
    if not trained.exists() or not trained.files("events"):
        log.info("the model's training store %s is not here: in-sample rows not checked",
                 learnt.store)  # fmt: skip
        return set()
    until = pd.Timestamp(learnt.labels_until, tz="UTC")
    # an inner join, so that DuckDB hashes the smaller side (a training store can be large)
    sql = (
        f"SELECT DISTINCT e.user_id FROM {event_files(store.files('events'))} e "
        f"JOIN {event_files(trained.files('events'))} t ON e.event_id = t.event_id "
        "WHERE t.ts < ?"
    )
    with connect(settings) as con:
        return {str(u) for (u,) in con.execute(sql, [until]).fetchall()}


def _per_cutoff(
    lab: pd.DataFrame, y: np.ndarray, p: np.ndarray, thr: float
) -> list[dict[str, Any]]:
    out = []
    for cutoff, idx in lab.groupby("cutoff").indices.items():
        yy, pp = y[idx], p[idx]
        row: dict[str, Any] = {"cutoff": str(pd.Timestamp(str(cutoff)).date()), "rows": len(idx),
                               "positives": int(yy.sum())}  # fmt: skip
        row.update({k: fn(yy, pp) for k, fn in SCORE_METRICS.items()})
        row.update(threshold_metrics(yy, pp, thr))
        out.append(row)
    return out


HISTORY_BANDS = (0, 14, 28, 56)
"""Days a user could be seen at the cutoff (exposure_days): the bands' lower edges."""


def history_bands(
    lab: pd.DataFrame, y: np.ndarray, p: np.ndarray, thr: float, *, n_boot: int
) -> list[dict[str, Any]]:
    """Metrics by how long each user had been observed at the cutoff: a user seen for a few
    days has little history to rank on, and a model can be calibrated overall yet under- or
    over-predict new users. Per band: rows, churners, the observed and mean predicted churn
    rate, ROC-AUC with its 95 % interval over users (where the band has both classes)."""
    if "exposure_days" not in lab:
        return []
    days = lab["exposure_days"].to_numpy(dtype=float)
    edges = [*HISTORY_BANDS, np.inf]
    out = []
    for lo, hi in itertools.pairwise(edges):
        idx = np.flatnonzero((days >= lo) & (days < hi))
        if not len(idx):
            continue
        yy, pp = y[idx], p[idx]
        row: dict[str, Any] = {
            "days observed": f"{lo}-{hi - 1:.0f}" if np.isfinite(hi) else f"{lo}+",
            "rows": len(idx), "churners": int(yy.sum()),
            "observed rate": float(yy.mean()), "mean predicted": float(pp.mean()),
        }  # fmt: skip
        if 0 < yy.sum() < len(yy):
            users = lab["user_id"].to_numpy()[idx]
            auc = evaluate_scores(yy, pp, users, threshold=thr, n_boot=n_boot)["roc_auc"]
            row.update({"roc_auc": auc.value, "roc_auc low": auc.low, "roc_auc high": auc.high})
        out.append(row)
    return out


def _figures(
    churn_model: Any, lab: pd.DataFrame, y: np.ndarray, p: np.ndarray, out_dir: Path
) -> tuple[list[Path], pd.Series | None]:
    """ROC, precision-recall, calibration and gains plots; SHAP importance and summary for
    models SHAP explains."""
    images = [
        report.plot_roc(y, p, out_dir),
        report.plot_pr(y, p, out_dir),
        report.plot_calibration(y, p, out_dir),
        report.plot_gains(y, p, out_dir),
    ]
    explained = shap_values(inner_pipeline(churn_model), lab)
    if explained is None:
        return images, None
    values, frame = explained
    importance = pd.Series(np.abs(values).mean(axis=0), index=frame.columns)
    importance = importance.sort_values(ascending=False)
    images.append(report.plot_importance(importance, out_dir))
    images.append(report.plot_shap_summary(values, frame, out_dir))
    return images, importance


def oracle_line(oracle: dict[str, float]) -> dict[str, str]:
    if not oracle:
        return {}
    return {
        "oracle (simulated log, true hazard)": (
            f"ROC-AUC {oracle['oracle_roc_auc']:.3f} (model/oracle "
            f"{oracle['model_to_oracle_roc_auc']:.2f}), PR-AUC {oracle['oracle_pr_auc']:.3f} "
            f"(model/oracle {oracle['model_to_oracle_pr_auc']:.2f})"
        )
    }
