"""A training run end to end: ingest (if raw logs are given), train, log to MLflow, register."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.errors import StoreError
from churnwatch.ingest import EventStore, ingest
from churnwatch.labels import CutoffSchedule
from churnwatch.models import report as rep
from churnwatch.models.evaluate import Evaluation, Learnt, evaluate_model
from churnwatch.models.metrics import oracle_metrics
from churnwatch.models.train import TrainConfig, TrainResult, evaluation_cutoffs, train
from churnwatch.recipe import ARTIFACT as RECIPE
from churnwatch.recipe import Recipe, feature_version
from churnwatch.schema import ColumnMapping
from churnwatch.simulate import truth_path

log = logging.getLogger(__name__)


def oracle_scores(result: TrainResult, truths: list[Path]) -> dict[str, float]:
    """On simulated logs: the true hazard's scores on the test cutoffs, and the chosen model's
    ratio to them."""
    return oracle_metrics(
        result.test_rows(), result.test_probability, truths, horizon_days=result.horizon_days
    )


@dataclass
class RunSummary:
    result: TrainResult
    tracking_uri: str
    run_id: str
    model_version: str
    aliases: tuple[str, ...]
    fingerprint: dict[str, Any]
    at_risk: pd.DataFrame  # the latest cutoff's users, most at risk first
    oracle: dict[str, float]  # simulated logs only: the true hazard's scores


def at_risk(result: TrainResult) -> pd.DataFrame:
    """Users of the latest cutoff ranked by the chosen model's calibrated probability."""
    snaps = result.snapshots
    latest = snaps[snaps["cutoff"] == snaps["cutoff"].max()]
    p = result.chosen.estimator.predict_proba(latest)[:, 1]
    out = pd.DataFrame({"user_id": latest["user_id"].to_numpy(), "probability": p})
    out["cutoff"] = latest["cutoff"].to_numpy()
    return out.sort_values(["probability", "user_id"], ascending=[False, True]).reset_index(
        drop=True
    )


def typical_values(rows: pd.DataFrame, features: Sequence[str]) -> dict[str, float]:
    """Each numeric feature's median over `rows` (missing values apart): the typical user a
    served reason compares with. Whatever the model imputes (the rate rule imputes 0)."""
    numeric = [f for f in features if f in rows and pd.api.types.is_numeric_dtype(rows[f])]
    medians = rows[numeric].astype(float).median(skipna=True)
    return {str(f): float(v) for f, v in medians.items() if np.isfinite(v)}


def fingerprint(store: EventStore, config: TrainConfig) -> dict[str, Any]:
    """What the model was trained on: store, content hash, date range, churn definition."""
    manifest = store.manifest()
    files = sorted((e["path"], e["rows"]) for e in manifest.files.get("events", []))
    digest = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:16]
    last = manifest.ingests[-1] if manifest.ingests else {}
    return {
        "store": str(store.root.resolve()),
        "store_version": manifest.version,
        "content_hash": digest,
        "events": sum(rows for _, rows in files),
        "first_event": min((i.get("first_ts") or "" for i in manifest.ingests), default=""),
        "last_event": last.get("last_ts", ""),
        "definition": config.definition.kind,
        "horizon_days": config.definition.horizon_days,
        "include_downgrade": config.definition.include_downgrade,
    }


def recipe_of(result: TrainResult, config: TrainConfig) -> Recipe:
    """What the chosen model was trained with, as every consumer has to rebuild it."""
    sched = config.schedule
    return Recipe(
        definition=config.definition,
        every_days=sched.every_days,
        min_history_days=sched.min_history_days,
        anchor=result.backtest.folds[0].cutoff,
        train_every_days=config.train_every_days,
        model=result.chosen.name,
        params=dict(result.chosen.params),
        calibration=result.chosen.calibration,
        threshold_rule=config.threshold_rule,
        threshold=result.threshold,
        seed=config.seed,
        n_trials=config.n_trials,
        features=tuple(result.features),
        feature_version=feature_version(result.spec),
        spec=result.spec,
    )


def run_training(
    *,
    settings: Settings,
    config: TrainConfig,
    data: Sequence[str] = (),
    store_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    ingested: bool = False,
) -> RunSummary:
    """Ingest `data` (if any, and not `ingested` already) into the store, with the column
    mapping of its latest ingest (eventsim's names for a new store), train, and log
    everything to MLflow (the oracle too, for simulated `data` with their truth files). A
    missing or empty store is an error: nothing is trained, registered or promoted."""
    store = EventStore(store_dir or settings.store_path)
    say = progress or (lambda _m: None)
    if data and not ingested:  # a later log of the store's feed: read as its files were
        say("ingesting")
        ingest(list(data), settings=settings, store_dir=store.root, mapping=store.mapping())
    store.require()  # before anything is logged
    result = train(store, config, progress=say)
    truths = [truth_path(Path(d)) for d in data if truth_path(Path(d)).is_file()]
    oracle = oracle_scores(result, truths) if truths else {}
    uri = tracking.setup(settings)
    fp = fingerprint(store, config)
    say("logging to MLflow")
    ranked = at_risk(result)  # the served model on the latest cutoff: also the score reference
    with (
        tracking.run(f"train-{result.chosen.name}") as run_id,
        tempfile.TemporaryDirectory() as tmp,
    ):
        metrics = _run_metrics(result, oracle)
        report = Path(tmp) / "metrics.json"
        report.write_text(json.dumps(_metrics_table(result), indent=1))
        figures = _test_figures(result, Path(tmp), oracle)
        feats = Path(tmp) / "features.json"
        feats.write_text(json.dumps(result.features, indent=1))
        reference = write_reference(result, Path(tmp) / REFERENCE, config.schedule)
        score_reference = Path(tmp) / SCORE_REFERENCE
        ranked[["user_id", "cutoff", "probability"]].rename(
            columns={"probability": "score"}
        ).to_parquet(score_reference, index=False)
        recipe = recipe_of(result, config)
        recipe_file = recipe.write(Path(tmp) / RECIPE)
        tracking.log_run(
            params=_run_params(result, config, recipe, fp),
            metrics=metrics,
            tags={"churnwatch.kind": "train"},
            artifacts=[report, feats, reference, score_reference, recipe_file, *figures],
        )
        example = result.snapshots[result.snapshots["label"].notna()]
        model = tracking.ChurnModel(
            result.chosen.estimator, result.features, result.threshold, result.reason_features,
            typical=typical_values(example, result.features),
        )  # fmt: skip
        registered = tracking.log_model(model, example)
    return RunSummary(
        result, uri, run_id, registered.version, registered.aliases, fp, ranked, oracle
    )


def _run_metrics(result: TrainResult, oracle: dict[str, float]) -> dict[str, float]:
    """Every candidate's backtest figures with their intervals, the chosen model's as
    `test_*`, the base-rate Brier, the oracle's (simulated logs) and the threshold."""
    metrics: dict[str, float] = {}
    named = [(f"{c.key}_test_", c.test) for c in result.candidates]
    for prefix, test in [*named, ("test_", result.chosen.test)]:
        for key, est in test.items():
            metrics[f"{prefix}{key}"] = est.value
            metrics[f"{prefix}{key}_low"] = est.low
            metrics[f"{prefix}{key}_high"] = est.high
    for c in result.candidates:
        metrics[f"{c.key}_backtest_mean_roc_auc"] = c.mean_roc_auc
    metrics["base_rate_brier"] = result.base_rate_brier
    metrics.update(oracle)
    metrics["threshold"] = result.threshold
    return metrics


def labels_seen_until(result: TrainResult) -> date:
    """When the last horizon the final model learnt from ends: it knows nothing of any churn
    after this day, so it is scored out of time on cutoffs from this day on."""
    return result.fit_cutoffs[-1] + timedelta(days=result.horizon_days)


def _run_params(
    result: TrainResult, config: TrainConfig, recipe: Recipe, fp: dict[str, Any]
) -> dict[str, Any]:
    """The run's parameters: the choice, the recipe, the chosen parameters, the data."""
    return {
        "model": result.chosen.name,
        "calibration": result.chosen.calibration,
        "tuning": result.chosen.tuning,
        "n_trials": config.n_trials,
        "train_every_days": config.train_every_days,
        "every_days": config.schedule.every_days,
        "min_history_days": config.schedule.min_history_days,
        "inactivity_days": config.definition.inactivity_days,
        "choice": result.choice.rule[:500],
        **recipe.to_params(),
        **{f"param_{k}": v for k, v in result.chosen.params.items()},
        "threshold_rule": config.threshold_rule,
        "split": result.describe(),
        # the end of the last label the served model learnt: a later cutoff is out of time for it
        "labels_seen_until": labels_seen_until(result).isoformat(),
        "seed": config.seed,
        **{f"data_{k}": v for k, v in fp.items()},
    }


REFERENCE = "reference.parquet"
# The served model's own scores on the latest cutoff of its training data (censored: never
# learnt from): the reference for prediction drift. The backtest's scores come from models
# fitted on less data, which spread their scores less, and would read as drift by themselves.
SCORE_REFERENCE = "score_reference.parquet"


# Cutoffs of the evaluation schedule in the feature drift reference: the latest ones.
REFERENCE_CUTOFFS = 3


def write_reference(
    result: TrainResult, path: Path, schedule: CutoffSchedule, *, max_rows: int = 20_000
) -> Path:
    """The monitoring reference for feature drift: every user at the last REFERENCE_CUTOFFS
    cutoffs of the evaluation schedule in the training data, labelled or not (the population
    as the model was trained), with the served model's probabilities.

    Not the backtest's evaluated cutoffs: they end a horizon before the data do and, on a short
    log, reach back to its first weeks, when every user is new to the log. On unshifted
    eventsim logs monitored one to three weeks after training, the drift alert fired in 22 of
    27 runs against them, in 4 of 27 against the latest cutoffs (`bench.drift_reference`)."""
    snaps = result.snapshots
    days = snaps["cutoff"].dt.date
    latest = evaluation_cutoffs(sorted(days.unique()), schedule)[-REFERENCE_CUTOFFS:]
    keep = snaps[days.isin(latest)]
    if len(keep) > max_rows:
        keep = keep.sample(max_rows, random_state=0)
    keep = keep.assign(score=result.chosen.estimator.predict_proba(keep)[:, 1])
    out = keep[["user_id", "cutoff", *result.features, "label", "score"]].copy()
    out.to_parquet(path, index=False)
    return path


def _test_figures(result: TrainResult, folder: Path, oracle: dict[str, float]) -> list[Path]:
    """Plots of the chosen model on the test cutoffs and an HTML report, for the MLflow run."""

    test = result.test_rows()
    y = test["label"].astype(int).to_numpy()
    p = result.test_probability
    images = [
        rep.plot_roc(y, p, folder),
        rep.plot_pr(y, p, folder),
        rep.plot_calibration(y, p, folder),
        rep.plot_gains(y, p, folder),
    ]
    table = pd.DataFrame(
        [
            {
                "model": c.label + (" (chosen)" if c is result.chosen else ""),
                "backtest mean ROC-AUC": c.mean_roc_auc,
                **{
                    k: c.test[k].value if k in c.test else np.nan
                    for k in ("roc_auc", "pr_auc", "lift_top10", "brier")
                },
                "tuning": c.tuning,
            }
            for c in result.candidates
        ]  # fmt: skip
    )
    summary = {
        "split": result.describe(),
        "choice": result.choice.rule,
        "chosen": f"{result.chosen.label} ({result.chosen.calibration} calibration)",
        "threshold": f"{result.threshold:.3f}",
        "base-rate Brier": f"{result.base_rate_brier:.4f}",
        "reasons drawn from (stable across folds)": ", ".join(result.reason_features) or "none",
        **{k: f"{v:.3f}" for k, v in oracle.items()},
    }
    page = rep.html_report(
        "churnwatch training run",
        summary,
        {
            "backtest, pooled over the folds (out of time)": table,
            "backtest per fold, chosen model": pd.DataFrame(result.chosen.per_fold),
            "choice (one-standard-error rule)": pd.DataFrame(result.choice.table),
        },
        images,
        folder,
    )
    return [*images, page]


def _metrics_table(result: TrainResult) -> list[dict[str, Any]]:
    return [
        {
            "model": c.label,
            "chosen": c is result.chosen,
            "calibration": c.calibration,
            "tuning": c.tuning,
            "params": c.params,
            "backtest_mean_roc_auc": c.mean_roc_auc,
            "per_fold": c.per_fold,
            "test": {k: v.as_dict() for k, v in c.test.items()},
        }
        for c in result.candidates
    ]


def evaluate_registered(
    ref: str,
    data: Sequence[str],
    *,
    out_dir: Path,
    settings: Settings,
    horizon_days: int | None = None,
    every_days: int | None = None,
    n_boot: int = 300,
    mapping: ColumnMapping | None = None,
) -> Evaluation:
    """Evaluate the registered model `ref` on logs `data`, labelled by its recipe. The logs
    are read with `mapping`, else as the model's training store read its last logs."""
    tracking.setup(settings)
    described = tracking.describe(ref)  # a clear RegistryError when the registry lacks `ref`
    churn_model = tracking.load(ref).unwrap_python_model()
    recipe = tracking.read_recipe(described)
    until = learnt_until(described)
    store = described["params"].get("data_store")
    learnt = Learnt(Path(store), until) if store and until else None
    if mapping is None and store:
        try:
            mapping = EventStore(store).mapping()
        except StoreError as exc:  # only a default: the logs may well read without it
            log.warning("the training store's column mapping is unreadable (%s)", exc)
    return evaluate_model(
        churn_model, recipe, data, name=ref, out_dir=out_dir, settings=settings,
        horizon_days=horizon_days, every_days=every_days, n_boot=n_boot, learnt=learnt,
        mapping=mapping,
    )  # fmt: skip


def learnt_until(described: dict[str, Any]) -> date | None:
    """The day a registered model's last learnt horizon ends (its run's `labels_seen_until`).
    A model trained before the parameter was recorded: its data's last event, which no label
    runs past."""
    params = described.get("params", {})
    text = params.get("labels_seen_until") or params.get("data_last_event") or ""
    try:
        return datetime.fromisoformat(text).date() if text else None
    except ValueError:
        return None
