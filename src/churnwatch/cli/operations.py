"""Operations commands: retrain, monitor, the drift demo, alerts and the model registry."""

from __future__ import annotations

import time
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from churnwatch import tracking
from churnwatch.cli import common as c
from churnwatch.config import Settings
from churnwatch.ingest.store import EventStore
from churnwatch.monitoring.alerts import read_alerts
from churnwatch.monitoring.demo import DemoConfig, drift_demo, markdown
from churnwatch.monitoring.monitor import MonitorReport
from churnwatch.monitoring.monitor import monitor as run_monitor
from churnwatch.monitoring.retrain import decision_table, notify
from churnwatch.monitoring.retrain import retrain as run_retrain

app = typer.Typer()
alerts = typer.Typer(help="Alerts raised by monitoring.", no_args_is_help=True)
models = typer.Typer(help="The model registry.", no_args_is_help=True)


def _settings(store: Path | None) -> Settings:
    """The settings, with the store the command line names (as ingest, train and score
    take it)."""
    return Settings(store_dir=store) if store is not None else Settings()


@app.command()
def retrain(
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="New logs to ingest first (files, dirs, globs; - is piped in), read with the "
            "column mapping of the store's last ingest."
        ),
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="pr_auc (default), roc_auc or lift_top10.")
    ] = None,
    margin: Annotated[
        float | None, typer.Option(help="How much better the challenger must be (default 0).")
    ] = None,
    trials: Annotated[
        int, typer.Option(min=0, help="Re-tune with this many Optuna trials (0: the defaults).")
    ] = 0,
    reload_url: Annotated[
        str | None, typer.Option(help="A running API to reload after a promotion.")
    ] = None,
    store: c.Store = None,
) -> None:
    """Ingest new data and train a challenger; promote it only if it beats the champion.

    The challenger uses the champion's recipe. Both are scored on the latest labelled cutoffs
    that neither learnt from: those after the champion's last learnt label."""
    settings = _settings(store)
    decision = c.run(
        lambda: run_retrain(
            settings,
            data=data or [],
            metric=metric,
            margin=margin,
            n_trials=trials,
            progress=lambda m: c.console.log(m),
        )  # fmt: skip
    )
    frame = decision_table(decision)
    rows = [[f"{v:.4f}" if isinstance(v, float) else v for v in row]
            for row in frame.itertuples(index=False)]  # fmt: skip
    if frame[decision.metric].notna().any():  # else there was nothing to compare on
        c.out.print(c.table(f"retrain on {decision.window}", rows, list(frame.columns)))
    if decision.challenger_version is None:  # the reason starts "not retrained"
        c.out.print(decision.reason[0].upper() + decision.reason[1:])
    else:
        c.out.print(("PROMOTED " if decision.promoted else "NOT PROMOTED ") + decision.reason)
    if decision.promoted and reload_url:
        answer = c.run(lambda: notify(reload_url, c.api_key(settings)))
        c.out.print(f"reloaded {reload_url}: {answer}")


@app.command()
def monitor(
    as_of: c.AsOf = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=f"Folder for the reports (default: monitoring/<cutoff> in {c.DATA_DIR}).",
        ),
    ] = None,
    every: Annotated[
        float, typer.Option(min=0, help="Run again every this many seconds (0: once).")
    ] = 0.0,
    store: c.Store = None,
) -> None:
    """Drift, realised performance of matured cohorts and alerts, against the champion.

    Writes an Evidently HTML report and a JSON summary, and logs them to MLflow."""
    settings = _settings(store)
    when = c.run(lambda: c.parse_time(as_of))
    while True:
        with c.console.status("monitoring"):
            report = c.run(lambda: run_monitor(settings, as_of=when, out_dir=out_dir))
        _print_monitoring(report)
        if not every:
            break
        time.sleep(every)


def _print_monitoring(report: MonitorReport) -> None:
    d = report.drift
    c.out.print(
        f"cutoff {report.cutoff}, model v{report.model_version}: "
        f"{d['share_drifted']:.0%} of {d['features_monitored']} features drifted, "
        f"prediction PSI {d['prediction_psi']:.3f}"
    )
    if report.latest_realised:
        r = report.latest_realised
        learnt = f" (in-sample: v{r.get('model_version')} learnt these labels)"
        c.out.print(
            f"latest matured cohort {str(r.get('cutoff'))[:10]} (v{r.get('model_version')}): "
            f"ROC-AUC {r.get('roc_auc', float('nan')):.3f}, "
            f"PR-AUC {r.get('pr_auc', float('nan')):.3f}{learnt if r.get('learnt') else ''}"
        )
    else:
        c.out.print(_not_matured(report))
    for a in report.alerts:
        c.out.print(f"ALERT {a['kind']} [{a.get('severity', 'warning')}]: {a['message']}")
    c.out.print(f"report: {report.html}")


def _not_matured(report: MonitorReport) -> str:
    """What monitoring can say of performance before any logged scores have met their labels."""
    first = min((str(k["cutoff"])[:10] for k in report.cohorts), default=report.cutoff)
    ready = date.fromisoformat(first) + timedelta(days=report.horizon_days)
    line = (
        f"realised performance: no logged scores have matured yet; the earliest (cutoff "
        f"{first}) meet their labels once the data reaches {ready}"
    )
    now = [k for k in report.cohorts if str(k["cutoff"])[:10] == report.cutoff]
    estimate = now[-1].get("estimated_roc_auc") if now else None
    if estimate is not None and estimate == estimate:  # not NaN
        line += f"; estimated ROC-AUC of these scores, if calibrated (CBPE): {estimate:.3f}"
    return line


@app.command()
def demo(
    out: Annotated[
        Path | None,
        typer.Option("--out", help=f"Folder for everything (default: drift-demo in {c.DATA_DIR})."),
    ] = None,
    users: Annotated[int, typer.Option(min=50, help="Simulated users.")] = 600,
    seed: Annotated[int, typer.Option(min=0, max=c.SEED_MAX, help="Random seed.")] = 7,
) -> None:
    """The drift scenario end to end: monitoring, alerts and retraining, week by week.

    A simulated log whose app release doubles adverts for free users and triples errors."""
    out_dir = c.output(out, "drift-demo", Settings())
    table = c.run(lambda: drift_demo(out_dir, DemoConfig(users=users, seed=seed),
                                     progress=lambda m: c.console.log(m)))  # fmt: skip
    c.out.print(markdown(table))
    c.out.print(f"report: {out_dir / 'report.html'}")


@alerts.command("list")
def alerts_list(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
    store: c.Store = None,
) -> None:
    """Recent alerts from the store's alerts table."""
    settings = _settings(store)
    df = read_alerts(EventStore(settings.store_path))
    if kind:
        df = df[df["kind"] == kind]
    if df.empty:
        c.console.print("no alerts")
        raise typer.Exit(code=0)
    rows = df.head(limit)[["created_at", "kind", "severity", "key", "message"]].itertuples(
        index=False
    )
    header = ("created_at", "kind", "severity", "key", "message")
    c.out.print(c.table("churnwatch alerts", rows, header))


@models.command("promote")
def models_promote(
    version: Annotated[str, typer.Argument(help="The registered version to serve, e.g. 3.")],
) -> None:
    """Make a registered version the champion, the model the API and scoring serve."""
    settings = Settings()
    tracking.setup(settings)
    before = c.run(lambda: tracking.promote(version))
    if before == version:
        c.out.print(f"v{version} is already the champion")
        return
    was = f" (was v{before}, now aliased previous)" if before else ""
    c.out.print(f"champion: v{version}{was}. A running API serves it at its next look at the "
                f"registry (every {settings.reload_poll_seconds:g} s) or at once after "
                "POST /admin/reload.")  # fmt: skip


@models.command("list")
def models_list() -> None:
    """Registered versions of the model, their aliases and key test metrics."""
    settings = Settings()
    uri = tracking.tracking_uri(settings)
    db = uri.removeprefix("sqlite:///")
    if db != uri and not Path(db).exists():  # say where it looked; leave no new registry
        versions = []
    else:
        tracking.setup(settings)
        versions = tracking.list_versions()
    if not versions:
        c.console.print(
            f"no registered model yet in {escape(uri)}: run `churnwatch train` first "
            "(CHURNWATCH_DATA_DIR or MLFLOW_TRACKING_URI name another registry)"
        )
        raise typer.Exit(code=0)
    metrics = ("test_roc_auc", "test_pr_auc", "test_brier")
    rows = [(r["version"], ",".join(r["aliases"]), r["model"],
             *(f"{r[k]:.3f}" if r[k] is not None else "-" for k in metrics), r["run_id"][:8])
            for r in versions]  # fmt: skip
    header = ("version", "aliases", "model", "test ROC-AUC", "test PR-AUC", "test Brier", "run")
    c.out.print(c.table("churnwatch models", rows, header))
