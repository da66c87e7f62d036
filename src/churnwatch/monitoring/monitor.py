"""`churnwatch monitor`: drift, prediction drift, realised and estimated performance, alerts.

One run, as of now or of a given time:
1. scores the current population (the midnight after the last event) with the champion and
   logs those scores, so their cohort can be judged once its labels mature;
2. compares the current window with the champion's reference (Evidently's drift metrics with
   their default tests, plus PSI), scores included;
3. judges every logged cohort whose horizon has passed with the scores it was given, and
   estimates the rest from the calibrated scores;
4. raises alerts, writes Evidently's HTML report, a JSON summary and a trend plot, and logs
   them to MLflow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.features.build import build_snapshots
from churnwatch.ingest.store import EventStore
from churnwatch.labels import CutoffSchedule, cutoff_for, require_population
from churnwatch.models.evaluate import label_overlaps
from churnwatch.models.scorer import Scorer
from churnwatch.monitoring.alerts import evaluate_rules, raise_alerts, read_alerts
from churnwatch.monitoring.drift import (
    DriftResult,
    detect_drift,
    monitored_features,
    save_report,
)
from churnwatch.monitoring.performance import cohort_metrics, log_predictions, read_predictions
from churnwatch.plotting import plt
from churnwatch.recipe import Recipe
from churnwatch.runs import REFERENCE, SCORE_REFERENCE, learnt_until

log = logging.getLogger(__name__)
# what a monitor run writes in its folder, <data_dir>/monitoring/<cutoff>/
SUMMARY, DRIFT_COLUMNS, COHORTS = "summary.json", "drift_columns.csv", "cohorts.csv"


@dataclass(frozen=True)
class Results:
    """What monitoring knows: the latest run's summary, drift per feature and cohorts; the
    newest alerts; and, for one user, the scores logged for them."""

    summary: dict[str, Any] | None
    drift: pd.DataFrame  # column, psi, drifted, ...
    cohorts: pd.DataFrame  # per cutoff and model version: users, churners, realised metrics
    alerts: pd.DataFrame  # newest first
    scores: pd.DataFrame  # user_id, cutoff, probability, model_version (by cutoff)


def results(
    settings: Settings,
    store: EventStore,
    *,
    user_id: str | None = None,
    all_scores: bool = False,
    alerts: int = 20,
) -> Results:
    """Monitoring's results for readers such as the dashboard: the one place that knows
    where `monitor` writes them. `scores` holds the logged scores of `user_id`, or every
    logged score with `all_scores`."""
    runs = sorted((settings.data_dir / "monitoring").glob(f"*/{SUMMARY}"),
                  key=lambda p: p.stat().st_mtime)  # fmt: skip
    folder = runs[-1].parent if runs else None

    def table(name: str) -> pd.DataFrame:
        path = folder / name if folder is not None else None
        return pd.read_csv(path) if path is not None and path.is_file() else pd.DataFrame()

    summary = json.loads((folder / SUMMARY).read_text()) if folder is not None else None
    scores = pd.DataFrame(columns=["user_id", "cutoff", "probability", "model_version"])
    if (user_id is not None or all_scores) and store.exists():
        logged = read_predictions(store)
        if user_id is not None:
            logged = logged[logged["user_id"] == user_id]
        scores = logged.sort_values("cutoff")
    return Results(
        summary=summary,
        drift=table(DRIFT_COLUMNS),
        cohorts=table(COHORTS),
        alerts=read_alerts(store, limit=alerts),
        scores=scores,
    )


@dataclass
class MonitorReport:
    as_of: str
    cutoff: str
    model_version: str
    drift: dict[str, Any]
    cohorts: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    quarantine_rate: float | None
    out_dir: str
    html: str
    run_id: str = ""
    latest_realised: dict[str, Any] = field(default_factory=dict)
    horizon_days: int = 0  # a cohort matures this many days after its cutoff


def _quarantine_rate(store: EventStore, since: pd.Timestamp | None) -> float | None:
    ingests = store.manifest().ingests
    if since is not None:  # run ids start with the ingest's UTC start time
        ingests = [i for i in ingests
                   if pd.Timestamp(str(i["run_id"]).split("-")[0], tz="UTC") >= since]  # fmt: skip
    read = sum(int(i.get("lines_read", 0)) for i in ingests)
    bad = sum(int(i.get("quarantined", 0)) for i in ingests)
    return bad / read if read else None


def _schedule_cutoff(store: EventStore, latest: datetime, recipe: Recipe) -> datetime:
    """The latest cutoff of the model's evaluation schedule before `latest`: the current
    window then falls on the same weekday as the reference, and the weekly rhythm of listening
    cannot read as drift. The schedule is the recipe's (its anchor and period); a recipe
    without an anchor counts from the store's first event, as training did."""
    if recipe.anchor is not None:
        day = recipe.on_schedule((latest - pd.Timedelta(days=1)).date())
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    first = min(pd.Timestamp(str(i["first_ts"])) for i in store.manifest().ingests
                if i.get("first_ts"))  # fmt: skip
    days = recipe.schedule.days(first.to_pydatetime(), latest - pd.Timedelta(days=1))
    if not days:
        return latest
    return datetime.fromtimestamp(days[-1] * 86_400, tz=UTC)


def monitor(
    settings: Settings,
    *,
    as_of: datetime | None = None,
    out_dir: Path | None = None,
    store: EventStore | None = None,
    log_to_mlflow: bool = True,
) -> MonitorReport:
    """One monitoring pass as of now (or `as_of`): score the population and log the scores,
    measure drift against the champion's reference, realised and estimated performance by
    cohort, raise alerts, write the report (and log it to MLflow)."""
    store = store or EventStore(settings.store_path)
    store.require()
    tracking.setup(settings)
    meta = tracking.describe(settings.model_ref)
    version = meta["version"] or meta["run_id"][:8]
    scorer = Scorer(tracking.load(settings.model_ref).unwrap_python_model())
    recipe = tracking.read_recipe(meta)
    end = store.last_event()
    last_day, until = cutoff_for(end, as_of)
    cutoff = _schedule_cutoff(store, last_day, recipe)
    require_population(cutoff, end, recipe.definition)
    clock = until or datetime.now(UTC)
    out_dir = out_dir or settings.data_dir / "monitoring" / f"{cutoff:%Y-%m-%d}"
    out_dir.mkdir(parents=True, exist_ok=True)
    logged = read_predictions(store)

    # 1. the current population, scored and logged
    snaps, current = _score_population(settings, store, scorer, recipe, cutoff, until, logged)
    scores = current[["user_id", "cutoff"]].assign(probability=current["score"].to_numpy())
    log_predictions(store, scores, version)
    # 2. drift against the champion's reference
    drift = _drift(settings, meta, scorer, recipe, current)
    html = save_report(drift, out_dir / "drift_report.html")
    drift.columns.to_csv(out_dir / DRIFT_COLUMNS, index=False)
    # 3. cohorts: realised where matured, estimated everywhere
    data_end = pd.Timestamp(min(end, until) if until else end)
    cohorts = _cohorts(store, snaps, cutoff, data_end, recipe.definition.horizon_days)
    cohorts.to_csv(out_dir / COHORTS, index=False)
    latest, reference_auc = _latest_realised(cohorts, meta)
    since = pd.Timestamp(logged["logged_at"].max()) if len(logged) else None
    q_rate = _quarantine_rate(store, since)
    # 4. alerts and outputs
    alerts = evaluate_rules(
        settings, users=scores, drift_share=drift.share, realised_roc_auc=latest.get("roc_auc"),
        reference_roc_auc=reference_auc, quarantine_rate=q_rate,
        context={"cutoff": cutoff.date().isoformat(), "model_version": version},
    )  # fmt: skip
    raised = raise_alerts(alerts, settings, store, now=clock)
    report = MonitorReport(
        as_of=clock.isoformat(timespec="seconds"), cutoff=cutoff.date().isoformat(),
        model_version=version, drift=drift.summary(),
        cohorts=json.loads(cohorts.to_json(orient="records", date_format="iso")),
        alerts=[{"kind": a.kind, "key": a.key, "message": a.message, "severity": a.severity}
                for a in raised],  # fmt: skip
        quarantine_rate=q_rate, out_dir=str(out_dir), html=str(html), latest_realised=latest,
        horizon_days=recipe.definition.horizon_days,
    )  # fmt: skip
    figure = plot_cohorts(cohorts, out_dir / "performance.png")
    _write(report, out_dir, [html, figure, out_dir / COHORTS], drift,
           log_to_mlflow=log_to_mlflow)  # fmt: skip
    return report


def _score_population(
    settings: Settings,
    store: EventStore,
    scorer: Scorer,
    recipe: Recipe,
    cutoff: datetime,
    until: datetime | None,
    logged: pd.DataFrame,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Snapshots at the cutoff and at every earlier cutoff that has logged scores (their
    labels mature into cohort metrics), and the current population with its scores."""
    past = {pd.Timestamp(c).date() for c in pd.to_datetime(logged["cutoff"], utc=True)}
    dates = sorted({cutoff.date(), *(d for d in past if d < cutoff.date())})
    table, _ = build_snapshots(
        store, definition=recipe.definition, schedule=CutoffSchedule(explicit=tuple(dates)),
        settings=settings, until=until, spec=recipe.spec,
    )  # fmt: skip
    snaps = table.to_pandas()
    current = snaps[snaps["cutoff"] == pd.Timestamp(cutoff)].copy()
    if current.empty:
        require_population(cutoff, store.last_event(), recipe.definition, users=0)
    current["score"] = scorer.score_frame(
        current.set_index("user_id")[scorer.features], explain=False
    ).probability
    return snaps, current


def _drift(
    settings: Settings,
    meta: dict[str, Any],
    scorer: Scorer,
    recipe: Recipe,
    current: pd.DataFrame,
) -> DriftResult:
    """Features against the champion's reference; its score against its own scores on the
    rows it never learnt from (runs logged before that existed: the backtest's scores)."""
    reference = tracking.read_parquet(meta["run_id"], REFERENCE)
    score_reference = None
    if tracking.has_artifact(meta["run_id"], SCORE_REFERENCE):
        score_reference = tracking.read_parquet(meta["run_id"], SCORE_REFERENCE)
    watched = monitored_features(scorer.features, recipe.spec)
    return detect_drift(
        reference, current, watched, min_psi=settings.drift_min_psi,
        score_reference=score_reference,
    )  # fmt: skip


def _cohorts(
    store: EventStore,
    snaps: pd.DataFrame,
    cutoff: datetime,
    data_end: pd.Timestamp,
    horizon_days: int,
) -> pd.DataFrame:
    """Realised metrics of every logged cohort up to the cutoff whose horizon has passed,
    estimated ones (CBPE) for every cohort."""
    predictions = read_predictions(store)
    up_to = pd.to_datetime(predictions["cutoff"], utc=True) <= pd.Timestamp(cutoff)
    return cohort_metrics(predictions[up_to], snaps, data_end=data_end, horizon_days=horizon_days)


def _latest_realised(
    cohorts: pd.DataFrame, meta: dict[str, Any]
) -> tuple[dict[str, Any], float | None]:
    """The latest matured cohort's realised metrics, and the test ROC-AUC of the model that
    scored it (what its realised figure is compared with). `learnt` says whether that model
    learnt labels the cohort's horizon covers (a run as of a past date): its figures are then
    in-sample."""
    matured = cohorts[cohorts["matured"]] if not cohorts.empty else cohorts
    if matured.empty:
        return {}, None
    row = matured.sort_values("cutoff").iloc[-1]
    latest = {str(k): (v.isoformat() if isinstance(v, pd.Timestamp) else v)
              for k, v in row.dropna().to_dict().items()}  # fmt: skip
    scored_by = str(row["model_version"])
    if scored_by.isdigit():  # a registered version: a registry failure is a failure
        then = tracking.describe(f"models:/{tracking.MODEL_NAME}/{scored_by}")
        until = learnt_until(then)
        if until is not None:
            latest["learnt"] = bool(label_overlaps([row["cutoff"]], until)[0])
        return latest, then["metrics"].get("test_roc_auc")
    if meta["run_id"].startswith(scored_by):  # scored by this (unregistered) run
        return latest, meta["metrics"].get("test_roc_auc")
    return latest, None


def _write(
    report: MonitorReport,
    out_dir: Path,
    files: list[Path | None],
    drift: DriftResult,
    *,
    log_to_mlflow: bool,
) -> None:
    """summary.json, and the run in MLflow with the report's files."""
    summary = out_dir / SUMMARY
    summary.write_text(json.dumps(report.__dict__, indent=1, default=str))
    if not log_to_mlflow:
        return
    metrics = {"drift_share": drift.share, "prediction_psi": drift.score_psi,
               "alerts": float(len(report.alerts))}  # fmt: skip
    for key in ("roc_auc", "pr_auc", "estimated_roc_auc"):
        if key in report.latest_realised:
            metrics[f"realised_{key}"] = float(report.latest_realised[key])
    with tracking.run(f"monitor-{report.cutoff}") as run_id:
        tracking.log_run(
            params={}, metrics=metrics,
            tags={"churnwatch.kind": "monitor", "model_version": report.model_version},
            artifacts=[p for p in (*files, summary) if p is not None and p.exists()],
        )  # fmt: skip
        report.run_id = run_id
    summary.write_text(json.dumps(report.__dict__, indent=1, default=str))


def plot_cohorts(cohorts: pd.DataFrame, path: Path) -> Path | None:
    """Realised ROC-AUC per matured cohort (by model version) and the CBPE estimate."""
    if cohorts.empty:
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    for version, g in cohorts.groupby("model_version"):
        g = g.sort_values("cutoff")
        ax.plot(g["cutoff"], g["estimated_roc_auc"], "--", alpha=0.6,
                label=f"v{version} estimated (CBPE)")  # fmt: skip
        m = g[g["matured"]]
        if len(m):
            ax.plot(m["cutoff"], m["roc_auc"], "o-", label=f"v{version} realised")
    ax.set_ylabel("ROC-AUC")
    ax.set_xlabel("cohort (cutoff)")
    ax.set_ylim(0.4, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Performance by cohort, with the scores given at the time")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
