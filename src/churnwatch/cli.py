"""The `churnwatch` command line: commands parse their options and delegate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from churnwatch.config import Settings
from churnwatch.errors import ChurnwatchError, ConfigError
from churnwatch.labels import ChurnDefinition, CutoffSchedule
from churnwatch.models.estimators import BASELINES, MODELS
from churnwatch.schema import CHURN_PAGE

app = typer.Typer(
    name="churnwatch",
    help="Predict, explain and monitor subscriber churn from music-streaming activity logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
out = Console()
T = TypeVar("T")

# The churn definition and cutoff schedule, spelled the same way by every command that takes
# them (snapshots, train, evaluate).
Horizon = Annotated[int, typer.Option(min=1, help="Days ahead the label looks.")]
Every = Annotated[int, typer.Option(min=1, help="Days between cutoffs.")]
MinHistory = Annotated[int, typer.Option(min=0, help="Days of data before the first cutoff.")]
DefinitionKind = Annotated[str, typer.Option(help="cancellation (default) or inactivity.")]
InactivityDays = Annotated[
    int, typer.Option(min=1, help="Days without events that make an inactivity churn.")
]
IncludeDowngrade = Annotated[
    bool, typer.Option("--include-downgrade", help="Count Submit Downgrade as churn too.")
]


def _definition(
    kind: str, horizon: int, inactivity_days: int, include_downgrade: bool
) -> ChurnDefinition:
    """The churn definition the snapshot options spell (checked by ChurnDefinition)."""
    return ChurnDefinition(
        kind=kind,  # type: ignore[arg-type]  # checked by ChurnDefinition
        horizon_days=horizon,
        inactivity_days=inactivity_days,
        include_downgrade=include_downgrade,
    )


# train's own
DEFAULT_MODELS = ",".join(MODELS)
Models = Annotated[
    str,
    typer.Option(
        help="Comma-separated candidates, simplest first; 'list' prints every candidate. "
        "Default: " + ",".join(MODELS) + "."
    ),
]
ThresholdRule = Annotated[str, typer.Option(help="Threshold rule: f1, capacity:0.05 or cost:5.")]
Trials = Annotated[
    int, typer.Option(min=0, help="Optuna trials per learnt model (0: the defaults).")
]
TrainEvery = Annotated[
    int, typer.Option(min=1, help="Days between training cutoffs (denser than --every).")
]


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")] = False,
) -> None:
    """churnwatch: from raw activity logs to a ranked, explained list of users likely to cancel."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )


def _run(fn: Callable[[], T]) -> T:
    """Run library code; turn a ChurnwatchError into a clear message and exit code 1."""
    try:
        return fn()
    except ChurnwatchError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1) from None


@contextmanager
def _bytes_progress(description: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar over input bytes, one task per file."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    tasks: dict[str, Any] = {}
    with Progress(*columns, console=console, transient=False) as bar:

        def advance(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bar.add_task(f"{description} {Path(name).name}", total=total)
            bar.advance(tasks[name], done)

        yield advance


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, directories or globs to read.")],
    store: Annotated[
        Path | None, typer.Option(help="Event store directory (default ./data/store).")
    ] = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 1) if any row is quarantined.")
    ] = False,
    map_: Annotated[
        list[str] | None,
        typer.Option("--map", help="field=column, e.g. --map user_id=customer (repeatable)."),
    ] = None,
    mapping_file: Annotated[
        Path | None, typer.Option(help="TOML/JSON file mapping canonical fields to columns.")
    ] = None,
    ts_unit: Annotated[
        str | None, typer.Option(help="Unit of numeric timestamps: ms (default), s, us, iso.")
    ] = None,
) -> None:
    """Validate logs and append them to the event store; bad rows go to the quarantine."""
    from churnwatch.ingest import ingest as run_ingest
    from churnwatch.schema import ColumnMapping

    settings = Settings()

    def work() -> Any:
        mapping = ColumnMapping.from_options(map_ or [], file=mapping_file, ts_unit=ts_unit)
        with _bytes_progress("reading") as advance:
            return run_ingest(
                paths, settings=settings, store_dir=store, mapping=mapping, strict=strict,
                progress=advance,
            )  # fmt: skip

    report = _run(work)
    out.print(_ingest_table(report))
    for problem in report.file_problems:
        console.print(f"[yellow]warning:[/] {problem['detail']}")


def _ingest_table(report: Any) -> Table:
    table = Table(title=f"ingest {report.run_id}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows: list[tuple[str, str]] = [
        ("files", f"{len(report.files):,}"),
        ("lines read", f"{report.lines_read:,}"),
        ("valid user events", f"{report.valid:,}"),
        ("  stored (new)", f"{report.stored:,}"),
        ("  already stored / repeated", f"{report.duplicates:,}"),
        ("guest / logged-out events", f"{report.guests:,} ({report.guests_stored:,} new)"),
        ("quarantined", f"{report.quarantined:,} ({report.quarantine_rate:.2%})"),
    ]
    rows += [(f"  {reason}", f"{n:,}") for reason, n in report.quarantined_by_reason.items()]
    rows += [
        ("users", f"{report.users:,}"),
        ("sessions", f"{report.sessions:,}"),
        ("date range (UTC)", f"{(report.first_ts or '')[:16]} .. {(report.last_ts or '')[:16]}"),
        (f"{CHURN_PAGE} events", f"{report.churn_events:,}"),
        ("store", report.store),
        ("quarantine file", report.quarantine_file or "-"),
        ("time", f"{report.seconds:.1f} s"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    return table


@app.command()
def simulate(
    out_path: Annotated[
        Path, typer.Option("--out", help="Output: .jsonl.gz, .jsonl or .parquet.")
    ] = Path("data/simulated/sparkify_sim.jsonl.gz"),
    users: Annotated[int, typer.Option(min=1, help="Users at the start.")] = 500,
    days: Annotated[int, typer.Option(min=1, help="Days to simulate.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same bytes).")] = 0,
    drift_day: Annotated[
        int | None, typer.Option(help="From this day, adverts double and errors triple.")
    ] = None,
) -> None:
    """Write a synthetic Sparkify-schema log with a known churn hazard (and its ground truth)."""
    from churnwatch.simulate import SimConfig, summary
    from churnwatch.simulate import simulate as run_simulate

    cfg = _run(lambda: SimConfig(users=users, days=days, seed=seed, drift_day=drift_day))
    columns = (TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(),
               TextColumn("days"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("days", total=days)
        result = _run(lambda: run_simulate(cfg, out_path, progress=lambda n: bar.advance(task, n)))
    s = summary(result)
    table = Table(title="simulate", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for k, v in [
        ("events", f"{s['events']:,}"),
        ("guest events", f"{result.guest_events:,}"),
        ("users", f"{s['users']:,}"),
        ("churned", f"{s['churned']:,} ({s['churn_rate']:.1%})"),
        ("NextSong share", f"{s['next_song_share']:.1%}"),
        ("log", str(result.out)),
        ("ground truth", str(result.truth)),
        ("time", f"{s['seconds']:.1f} s ({s['events'] / max(s['seconds'], 1e-9):,.0f} events/s)"),
    ]:
        table.add_row(k, v)
    out.print(table)


@app.command()
def snapshots(
    out_path: Annotated[
        Path, typer.Option("--out", help="Snapshot table to write (Parquet).")
    ] = Path("data/snapshots.parquet"),
    store: Annotated[Path | None, typer.Option(help="Event store (default ./data/store).")] = None,
    engine: Annotated[str, typer.Option(help="duckdb (default) or spark.")] = "duckdb",
    horizon: Horizon = 14,
    every: Every = 7,
    min_history: MinHistory = 14,
    definition: DefinitionKind = "cancellation",
    inactivity_days: InactivityDays = 30,
    include_downgrade: IncludeDowngrade = False,
    cutoff: Annotated[
        list[str] | None, typer.Option(help="Explicit cutoff date YYYY-MM-DD (repeatable).")
    ] = None,
    spark_master: Annotated[
        str | None, typer.Option(help="Spark master URL (default local[*]).")
    ] = None,
    spark_conf: Annotated[
        list[str] | None, typer.Option(help="Spark setting key=value (repeatable).")
    ] = None,
) -> None:
    """Build the snapshot table: one row per (user, cutoff), features and label (or null)."""
    from datetime import date

    from churnwatch.features import build_snapshots
    from churnwatch.features.engines import make_engine
    from churnwatch.ingest import EventStore

    settings = Settings()

    def work() -> Any:
        try:
            dates = tuple(date.fromisoformat(c) for c in cutoff or [])
        except ValueError as exc:
            raise ConfigError(f"--cutoff has to be a date YYYY-MM-DD: {exc}") from exc
        conf = dict(_pair(kv) for kv in spark_conf or [])
        eng = (
            make_engine(engine, settings, master=spark_master, conf=conf)
            if engine == "spark"
            else make_engine(engine, settings)
        )
        return build_snapshots(
            EventStore(store or settings.store_path),
            definition=_definition(definition, horizon, inactivity_days, include_downgrade),
            schedule=CutoffSchedule(every_days=every, min_history_days=min_history, explicit=dates),
            engine=eng,
            settings=settings,
            out=out_path,
        )

    with console.status(f"building snapshots on {engine} ..."):
        _, report = _run(work)
    _print_snapshots(report)


def _print_snapshots(report: Any) -> None:
    """Snapshots, churners and censored rows per cutoff, and where the table went."""
    table = Table(title=f"snapshots ({report.engine})", title_justify="left")
    for col in ("cutoff", "snapshots", "positives", "censored"):
        table.add_column(col, justify="right")
    for row in report.per_cutoff:
        table.add_row(row["cutoff"], f"{row['snapshots']:,}", f"{row['positives']:,}",
                      f"{row['censored']:,}")  # fmt: skip
    table.add_row("total", f"{report.rows:,}", f"{report.positives:,}", f"{report.censored:,}",
                  style="bold")  # fmt: skip
    out.print(table)
    out.print(
        f"{report.features} features, {report.rows:,} rows -> {report.out}  "
        f"({report.seconds:.1f} s on {report.engine})"
    )


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"expected key=value. Got {text!r} instead.")
    return key.strip(), value.strip()


@app.command()
def features(
    list_: Annotated[bool, typer.Option("--list", help="List the feature catalog.")] = True,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the catalog as Markdown (docs/features.md).")
    ] = False,
) -> None:
    """The feature catalog: name, window, type and description of every feature."""
    from churnwatch.features.catalog import catalog
    from churnwatch.features.catalog import markdown as as_markdown

    if markdown:
        print(as_markdown(), end="")
        return
    table = Table(title=f"{len(catalog())} features (* = seed feature)", title_justify="left")
    for col in ("name", "window", "type", "description"):
        table.add_column(col)
    for f in catalog():
        table.add_row(f.name + (" *" if f.seed else ""), f.window, f.kind, f.description)
    out.print(table)


def _models_table() -> Table:
    """Every candidate `train --models` accepts, simplest first."""
    from churnwatch.models import estimators

    doc = estimators.__doc__ or ""
    table = Table(title="candidate models, simplest first", title_justify="left")
    for col in ("model", "kind", "default", "what"):
        table.add_column(col)
    for name in estimators.ALL_MODELS:
        line = next((ln for ln in doc.splitlines() if ln.startswith(f"- `{name}`")), "")
        kind = "baseline" if name in estimators.BASELINES else "learnt"
        default = "yes" if name in estimators.MODELS else "no"
        what = line.partition(": ")[2]
        if name in estimators.PATHS:
            key, values = estimators.PATHS[name]
            what += f" ({key} chosen on the backtest among {', '.join(map(str, values))})"
        table.add_row(name, kind, default, what)
    return table


@app.command()
def train(
    data: Annotated[
        list[str] | None, typer.Option(help="Raw logs to ingest first (files, dirs, globs).")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="Event store (default ./data/store).")] = None,
    horizon: Horizon = 14,
    every: Every = 7,
    min_history: MinHistory = 14,
    definition: DefinitionKind = "cancellation",
    inactivity_days: InactivityDays = 30,
    include_downgrade: IncludeDowngrade = False,
    models: Models = DEFAULT_MODELS,
    threshold: ThresholdRule = "f1",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    trials: Trials = 0,
    train_every: TrainEvery = 1,
    folds: Annotated[int, typer.Option(min=1, help="Backtest folds (the last k).")] = 6,
) -> None:
    """Backtest candidate churn models out of time, choose one, refit it on everything
    labelled; log to MLflow and register it."""
    from churnwatch.models.train import TrainConfig
    from churnwatch.runs import run_training

    settings = Settings()

    if models.strip() == "list":
        out.print(_models_table())
        return

    def work() -> Any:
        config = TrainConfig(
            definition=_definition(definition, horizon, inactivity_days, include_downgrade),
            schedule=CutoffSchedule(every_days=every, min_history_days=min_history),
            train_every_days=train_every,
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
            threshold_rule=threshold,
            seed=seed,
            n_trials=trials,
            backtest_folds=folds,
        )
        with console.status("training ...") as status:
            return run_training(
                settings=settings, config=config, data=data or [], store_dir=store,
                progress=lambda msg: status.update(f"training: {msg} ..."),
            )  # fmt: skip

    _print_training(_run(work))


def _print_training(summary: Any) -> None:
    """The backtest table, the choice, the reasons' features and the users most at risk."""
    result = summary.result
    table = Table(
        title=f"models, out of time: {result.describe()}", title_justify="left",
        caption="pooled over the folds, 95% intervals over users; Brier for the chosen model "
        "(calibrated in every fold)", caption_justify="left",
    )  # fmt: skip
    cols = ("model", "mean fold ROC-AUC", "ROC-AUC", "PR-AUC", "lift@10%", "Brier")
    for col in cols:
        table.add_column(col, justify="right" if col != "model" else "left")
    for c in result.candidates:
        t = c.test
        table.add_row(
            c.label + (" (chosen)" if c is result.chosen else "")
            + (" [baseline]" if c.name in BASELINES else ""),
            f"{c.mean_roc_auc:.3f}", _ci(t["roc_auc"]), _ci(t["pr_auc"]), _ci(t["lift_top10"]),
            _ci(t["brier"]) if "brier" in t else "-",
        )  # fmt: skip
    out.print(table)
    out.print(result.choice.rule)
    if summary.oracle:
        o = summary.oracle
        out.print(
            f"simulated log, true hazard as oracle on the test cutoffs: ROC-AUC "
            f"{o['oracle_roc_auc']:.3f} (model/oracle {o['model_to_oracle_roc_auc']:.2f}), "
            f"PR-AUC {o['oracle_pr_auc']:.3f} (model/oracle {o['model_to_oracle_pr_auc']:.2f})"
        )
    out.print(f"{result.chosen.label}: {result.chosen.tuning}")
    stable = result.reason_features
    out.print(
        f"reasons are drawn from the {len(stable)} feature(s) whose effect kept its sign in every "
        f"backtest fold: {', '.join(stable[:12])}{' ...' if len(stable) > 12 else ''}"
    )
    risk = summary.at_risk.head(10)
    top = Table(
        title=f"ten users most at risk at the latest cutoff ({risk['cutoff'].iloc[0]:%Y-%m-%d})",
        title_justify="left",
    )
    top.add_column("user")
    top.add_column("P(churn in the next horizon)", justify="right")
    for row in risk.itertuples():
        top.add_row(str(row.user_id), f"{row.probability:.1%}")
    out.print(top)
    out.print(
        f"base-rate Brier {result.base_rate_brier:.4f}; threshold {result.threshold:.3f}; "
        f"registered churnwatch v{summary.model_version} {list(summary.aliases) or ''}; "
        f"run {summary.run_id}; tracking {summary.tracking_uri}"
    )


@app.command()
def evaluate(
    data: Annotated[list[str], typer.Option(help="Logs to evaluate on (files, dirs, globs).")],
    model: Annotated[
        str,
        typer.Option(help="models:/churnwatch@champion, models:/churnwatch/3 or runs:/ID/model"),
    ] = "models:/churnwatch@champion",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for metrics, plots, report.")] = (
        Path("data/evaluation")
    ),
    horizon: Annotated[
        int | None, typer.Option(min=1, help="Override the model's horizon (days).")
    ] = None,
    every: Annotated[
        int | None, typer.Option(min=1, help="Override the model's days between cutoffs.")
    ] = None,
) -> None:
    """Score any log with a registered model: metrics with intervals, plots and a report.
    Labels and cutoffs follow the model's recipe (its churn definition and schedule)."""
    from churnwatch.runs import evaluate_registered

    settings = Settings()

    def work() -> Any:
        with console.status("evaluating ..."):
            return evaluate_registered(
                model, data, out_dir=out_dir, settings=settings,
                horizon_days=horizon, every_days=every,
            )  # fmt: skip

    ev = _run(work)
    out.print(f"labels: {ev.recipe.describe()} ({ev.recipe_source})")
    table = Table(title=f"{model}: {ev.rows:,} labelled snapshots, {ev.positives:,} churned",
                  title_justify="left")  # fmt: skip
    for col in ("metric", "value", "95% interval"):
        table.add_column(col, justify="right" if col != "metric" else "left")
    for name, v in ev.pooled.items():
        table.add_row(name, f"{v['value']:.3f}", f"[{v['low']:.3f}, {v['high']:.3f}]")
    out.print(table)
    out.print(ev.classification_report)
    out.print(f"metrics: {ev.metrics_path}\nreport:  {ev.report_path}")


def _ci(est: Any) -> str:
    return f"{est.value:.3f} [{est.low:.3f}, {est.high:.3f}]"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    model: Annotated[
        str | None, typer.Option(help="Model to serve (default models:/churnwatch@champion).")
    ] = None,
    store: Annotated[Path | None, typer.Option(help="Event store (default ./data/store).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve churn scores over HTTP: /predict, /predict/batch, /users/at-risk, /events, /docs."""
    import uvicorn

    from churnwatch.serving.app import create_app

    overrides: dict[str, Any] = {}
    if model:
        overrides["model_ref"] = model
    if store:
        overrides["store_dir"] = store
    settings = Settings(**overrides)
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


@app.command()
def score(
    out_path: Annotated[
        Path, typer.Option("--out", help="Scores to write: .parquet or .csv (a folder on Spark).")
    ],
    store: Annotated[Path | None, typer.Option(help="Event store (default ./data/store).")] = None,
    engine: Annotated[str, typer.Option(help="duckdb (default) or spark.")] = "duckdb",
    as_of: Annotated[
        str | None, typer.Option(help="Score as of this time (ISO 8601); default: now.")
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model (default models:/churnwatch@champion).")
    ] = None,
    spark_master: Annotated[
        str | None, typer.Option(help="Spark master URL (default local[*]).")
    ] = None,
) -> None:
    """Score every active user with the champion: probability, risk band, top reasons."""
    from datetime import datetime

    from churnwatch.ingest.store import EventStore
    from churnwatch.serving.batch import score_store

    settings = Settings()

    def run() -> Any:
        when = None
        if as_of:
            try:
                when = datetime.fromisoformat(as_of)
            except ValueError as exc:
                raise ConfigError(f"--as-of expected an ISO 8601 time. Got {as_of!r}.") from exc
        eng: Any = engine
        if engine == "spark":
            from churnwatch.features.engines import SparkEngine

            eng = SparkEngine(spark_master)
        with console.status(f"scoring on {engine}"):
            return score_store(
                settings=settings, out=out_path, engine=eng, as_of=when, model_ref=model,
                store=EventStore(store or settings.store_path),
            )  # fmt: skip

    report = _run(run)
    out.print(
        f"scored {report.users:,} active users as of {report.cutoff} with {report.model} on "
        f"{report.engine} in {report.seconds:.1f} s: {report.high:,} in the high band -> "
        f"{report.out}"
    )


@app.command()
def retrain(
    data: Annotated[
        list[str] | None, typer.Option(help="New logs to ingest first (files, dirs, globs).")
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
) -> None:
    """Ingest new data, train a challenger with the champion's recipe, promote it only if it
    beats the champion on the most recent labelled window."""
    from churnwatch.monitoring.retrain import decision_table, notify
    from churnwatch.monitoring.retrain import retrain as run_retrain

    settings = Settings()

    def run() -> Any:
        return run_retrain(
            settings, data=data or [], metric=metric, margin=margin,
            n_trials=trials, progress=lambda m: console.log(m),
        )  # fmt: skip

    decision = _run(run)
    table = Table(title=f"retrain on {decision.window}", title_justify="left")
    frame = decision_table(decision)
    for col in frame.columns:
        table.add_column(col)
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4f}" if isinstance(v, float) else str(v) for v in row))
    out.print(table)
    out.print(("PROMOTED " if decision.promoted else "NOT PROMOTED ") + decision.reason)
    if decision.promoted and reload_url:
        answer = _run(lambda: notify(reload_url, _key(settings)))
        out.print(f"reloaded {reload_url}: {answer}")


def _key(settings: Settings) -> str | None:
    return settings.api_key.get_secret_value() if settings.api_key else None


@app.command()
def monitor(
    as_of: Annotated[
        str | None, typer.Option(help="Monitor as of this time (ISO 8601); default: now.")
    ] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for the reports.")] = None,
    every: Annotated[
        float, typer.Option(min=0, help="Run again every this many seconds (0: once).")
    ] = 0.0,
) -> None:
    """Data and prediction drift against the champion's reference, realised performance of
    matured cohorts, alerts; Evidently HTML report and JSON summary, logged to MLflow."""
    import time
    from datetime import datetime

    from churnwatch.monitoring.monitor import monitor as run_monitor

    settings = Settings()
    when = None
    if as_of:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            console.print(f"--as-of expected an ISO 8601 time. Got {as_of!r}.")
            raise typer.Exit(code=1) from None
    while True:
        with console.status("monitoring"):
            report = _run(lambda: run_monitor(settings, as_of=when, out_dir=out_dir))
        d = report.drift
        out.print(
            f"cutoff {report.cutoff}, model v{report.model_version}: "
            f"{d['share_drifted']:.0%} of {d['features_monitored']} features drifted, "
            f"prediction PSI {d['prediction_psi']:.3f}"
        )
        if report.latest_realised:
            r = report.latest_realised
            out.print(
                f"latest matured cohort {str(r.get('cutoff'))[:10]} (v{r.get('model_version')}): "
                f"ROC-AUC {r.get('roc_auc', float('nan')):.3f}, "
                f"PR-AUC {r.get('pr_auc', float('nan')):.3f}"
            )
        for a in report.alerts:
            out.print(f"ALERT {a['kind']}: {a['message']}")
        out.print(f"report: {report.html}")
        if not every:
            break
        time.sleep(every)


@app.command()
def demo(
    drift: Annotated[bool, typer.Option("--drift", help="The drift scenario.")] = True,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for everything.")] = Path(
        "data/drift-demo"
    ),
    users: Annotated[int, typer.Option(min=50, help="Simulated users.")] = 600,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Drift, alerts and retraining end to end on a simulated log whose app release doubles
    adverts for free users and triples errors."""
    from churnwatch.monitoring.demo import DemoConfig, drift_demo, markdown

    if not drift:
        console.print("only the drift scenario exists: churnwatch demo --drift")
        raise typer.Exit(code=1)
    table = _run(lambda: drift_demo(out_dir, DemoConfig(users=users, seed=seed),
                                    progress=lambda m: console.log(m)))  # fmt: skip
    out.print(markdown(table))
    out.print(f"report: {out_dir / 'report.html'}")


alerts_app = typer.Typer(help="Alerts raised by monitoring.", no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("list")
def alerts_list(
    limit: Annotated[int, typer.Option(min=1, help="How many, newest first.")] = 20,
    kind: Annotated[str | None, typer.Option(help="Only this kind.")] = None,
) -> None:
    """Recent alerts from the store's alerts table."""
    from churnwatch.ingest.store import EventStore
    from churnwatch.monitoring.alerts import read_alerts

    settings = Settings()
    df = read_alerts(EventStore(settings.store_path))
    if kind:
        df = df[df["kind"] == kind]
    if df.empty:
        console.print("no alerts")
        raise typer.Exit(code=0)
    table = Table(title="churnwatch alerts", title_justify="left")
    for col in ("created_at", "kind", "severity", "key", "message"):
        table.add_column(col)
    for row in df.head(limit).itertuples():
        table.add_row(*(str(v) for v in (row.created_at, row.kind, row.severity, row.key,
                                          row.message)))  # fmt: skip
    out.print(table)


models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """Registered versions of the model, their aliases and key test metrics."""
    from churnwatch import tracking

    settings = Settings()
    tracking.setup(settings)
    rows = tracking.list_versions()
    if not rows:
        console.print("no registered model yet: run `churnwatch train` first")
        raise typer.Exit(code=0)
    table = Table(title="churnwatch models", title_justify="left")
    for col in ("version", "aliases", "model", "test ROC-AUC", "test PR-AUC", "test Brier", "run"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["version"], ",".join(r["aliases"]), r["model"],
            *(f"{r[k]:.3f}" if r[k] is not None else "-" for k in
              ("test_roc_auc", "test_pr_auc", "test_brier")),
            r["run_id"][:8],
        )  # fmt: skip
    out.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
