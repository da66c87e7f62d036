"""Modelling commands: train (backtest, choose, refit, register) and evaluate."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from churnwatch.cli import common as c
from churnwatch.config import Settings
from churnwatch.labels import CutoffSchedule
from churnwatch.models import estimators
from churnwatch.models.evaluate import Evaluation, in_sample_warning, oracle_line, read_text
from churnwatch.models.metrics import Estimate
from churnwatch.models.train import TrainConfig
from churnwatch.runs import RunSummary, evaluate_registered, run_training

app = typer.Typer()
DEFAULT_MODELS = ",".join(estimators.MODELS)

Models = Annotated[
    str,
    typer.Option(
        help="Comma-separated candidates in the choice's order (a later one is served only when it "
        "beats the earlier ones by more than the noise); 'list' prints every candidate. "
        "Default: "
        + DEFAULT_MODELS
        + "; with --definition inactivity "
        + ",".join(estimators.default_models("sparkify", "inactivity"))
        + " (the days since the last event as the "
        "rule, not the risky pages); for a log of any event types "
        + ",".join(estimators.default_models("events", "cancellation"))
        + "."
    ),
]
ThresholdRule = Annotated[str, typer.Option(help="Threshold rule: f1, capacity:0.05 or cost:5.")]
Trials = Annotated[
    int, typer.Option(min=0, help="Optuna trials per learnt model (0: the defaults).")
]
TrainEvery = Annotated[
    int, typer.Option(min=1, help="Days between training cutoffs (denser than --every).")
]


@app.command()
def train(
    data: Annotated[
        list[str] | None,
        typer.Option(help="Raw logs to ingest first (files, dirs, globs; - is piped in)."),
    ] = None,
    store: c.Store = None,
    horizon: c.Horizon = 14,
    every: c.Every = 7,
    min_history: c.MinHistory = 14,
    definition: c.DefinitionKind = "cancellation",
    inactivity_days: c.InactivityDays = 30,
    include_downgrade: c.IncludeDowngrade = False,
    models: Models = DEFAULT_MODELS,
    threshold: ThresholdRule = "f1",
    seed: Annotated[int, typer.Option(min=0, max=c.SEED_MAX, help="Random seed.")] = 0,
    trials: Trials = 0,
    train_every: TrainEvery = 1,
    folds: Annotated[int, typer.Option(min=1, help="Backtest folds (the last k).")] = 6,
    features: c.Features = "auto",
    event_types: c.EventTypes = 20,
) -> None:
    """Backtest candidate models out of time, choose one, refit it on all labelled data.

    The run, its metrics and the model are logged to MLflow and the model is registered."""
    if models.strip() == "list":
        c.out.print(_models_table())
        return
    settings = Settings()

    def work() -> RunSummary:
        config = TrainConfig(
            catalog=features,  # type: ignore[arg-type]  # checked by spec_for
            event_types=event_types,
            definition=c.definition(definition, horizon, inactivity_days, include_downgrade),
            schedule=CutoffSchedule(every_days=every, min_history_days=min_history),
            train_every_days=train_every,
            models=tuple(m.strip() for m in models.split(",") if m.strip()),
            threshold_rule=threshold,
            seed=seed,
            n_trials=trials,
            backtest_folds=folds,
        )
        with c.console.status("training ...") as status:
            return run_training(
                settings=settings, config=config, data=data or [], store_dir=store,
                progress=lambda msg: status.update(f"training: {msg} ..."),
            )  # fmt: skip

    _print_training(c.run(work))


def _models_table() -> Table:
    """Every candidate `train --models` accepts, in the choice's order."""
    lines = (estimators.__doc__ or "").splitlines()
    rows = []
    for name in estimators.ALL_MODELS:
        # the model's bullet in the module's docstring, with its indented continuation lines
        start = next((i for i, ln in enumerate(lines) if ln.startswith(f"- `{name}`")), None)
        bullet = []
        if start is not None:
            bullet = [lines[start]]
            bullet += [ln.strip() for ln in itertools.takewhile(
                lambda ln: ln.startswith("  "), lines[start + 1 :])]  # fmt: skip
        what = " ".join(bullet).partition(": ")[2].rstrip(";,.")
        if name in estimators.PATHS:
            key, values = estimators.PATHS[name]
            what += f" ({key} chosen on the backtest among {', '.join(map(str, values))})"
        kind = "baseline" if name in estimators.BASELINES else "learnt"
        rows.append((name, kind, _default_for(name), what))
    header = ("model", "kind", "default", "what")
    title = "candidate models, in the order of the choice (the reference first)"
    return c.table(title, rows, header)


def _default_for(name: str) -> str:
    """When `train` compares `name` without --models: on an eventsim log with either churn
    definition ("yes"), with one of them, and on other logs (a catalog of any event types)."""
    cancel = name in estimators.default_models("sparkify", "cancellation")
    quiet = name in estimators.default_models("sparkify", "inactivity")
    when = ["yes"] if cancel and quiet else ["cancellation"] if cancel else []
    when += ["inactivity"] if quiet and not cancel else []
    when += ["other logs"] if name in estimators.default_models("events", "cancellation") else []
    return ", ".join(when) or "no"


def _print_training(summary: RunSummary) -> None:
    """The backtest table, the choice, the reasons' features and the users most at risk."""
    result = summary.result
    rows: list[tuple[str, ...]] = []
    for cand in result.candidates:
        t = cand.test
        label = cand.label + (" *" if cand is result.chosen else "")
        label += " (baseline)" if cand.name in estimators.BASELINES else ""
        rows.append((label, f"{cand.mean_roc_auc:.3f}", c.ci_cell(t["roc_auc"]),
                     c.ci_cell(t["pr_auc"]), c.ci_cell(t["lift_top10"])))  # fmt: skip
    header = ("model", "fold mean ROC-AUC", "ROC-AUC", "PR-AUC", "lift@10%")
    caption = "* chosen. Pooled over the folds, with 95% intervals over users."
    title = f"models, out of time: {result.describe()}"
    c.out.print(c.table(title, rows, header, numbers_from=1, caption=caption))
    if "brier" in result.chosen.test:
        b = result.chosen.test["brier"]
        c.out.print(
            f"{result.chosen.label}, calibrated in every fold: Brier {b.value:.4f} "
            f"[{b.low:.4f}, {b.high:.4f}] (the base rate's {result.base_rate_brier:.4f})"
        )
    c.out.print(result.choice.rule)
    if summary.oracle:
        o = summary.oracle
        c.out.print(
            f"simulated log, true hazard as oracle on the test cutoffs: ROC-AUC "
            f"{o['oracle_roc_auc']:.3f} (model/oracle {o['model_to_oracle_roc_auc']:.2f}), "
            f"PR-AUC {o['oracle_pr_auc']:.3f} (model/oracle {o['model_to_oracle_pr_auc']:.2f})"
        )
    c.out.print(f"{result.chosen.label}: {result.chosen.tuning}")
    stable = result.reason_features
    c.out.print(
        f"reasons are drawn from the {len(stable)} feature(s) whose effect kept its sign in every "
        f"backtest fold: {', '.join(stable[:12])}{' ...' if len(stable) > 12 else ''}"
    )
    risk = summary.at_risk.head(10)
    # short enough for the two-column table's width: a longer title wraps over two lines
    title = f"most at risk, latest cutoff {risk['cutoff'].iloc[0]:%Y-%m-%d}"
    rows = [(str(r.user_id), f"{r.probability:.1%}") for r in risk.itertuples()]
    risk_header = ("user", f"P(churn in the next {result.horizon_days} days)")
    c.out.print(c.table(title, rows, risk_header, numbers_from=1))
    c.out.print(
        f"threshold {result.threshold:.3f}; "
        f"registered churnwatch v{summary.model_version}"
        + (
            ", the champion; "
            if "champion" in summary.aliases
            else f" (the champion stays: `churnwatch models promote {summary.model_version}` "
            "serves this one); "
        )
        + f"run {summary.run_id}; tracking {summary.tracking_uri}"
    )


@app.command()
def evaluate(
    data: Annotated[
        list[str], typer.Option(help="Logs to evaluate on (files, dirs, globs; - is piped in).")
    ],
    model: Annotated[
        str,
        typer.Option(help="models:/churnwatch@champion, models:/churnwatch/3 or runs:/ID/model"),
    ] = "models:/churnwatch@champion",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=f"Folder for metrics, plots, report (default: evaluation in {c.DATA_DIR}).",
        ),
    ] = None,
    horizon: Annotated[
        int | None, typer.Option(min=1, help="Override the model's horizon (days).")
    ] = None,
    every: Annotated[
        int | None, typer.Option(min=1, help="Override the model's days between cutoffs.")
    ] = None,
    map_: c.MapPairs = None,
    mapping_file: c.MappingFile = None,
    ts_unit: c.TsUnit = None,
    ts_format: c.TsFormat = None,
    event_name: c.EventName = None,
    dedupe: c.Dedupe = None,
    ts_min: c.TsMin = None,
    ts_max_future_days: c.TsMaxFutureDays = None,
    encoding: c.Encoding = None,
    anonymous: c.Anonymous = None,
) -> None:
    """Score any log with a registered model: metrics with intervals, plots and a report.

    Labels and cutoffs follow the model's recipe (its churn definition and schedule). The logs
    are read with --map, --mapping-file and the other reading options, as `ingest` reads them;
    without any, with the column mapping of the model's training store."""
    settings = Settings()
    out_dir = c.output(out, "evaluation", settings)
    options = {"ts_unit": ts_unit, "ts_format": ts_format, "event_name": event_name,
               "dedupe": dedupe, "ts_min": ts_min, "ts_max_future_days": ts_max_future_days,
               "encoding": encoding, "anonymous": anonymous}  # fmt: skip

    def work() -> Evaluation:
        given = map_ or mapping_file is not None or any(v is not None for v in options.values())
        mapping = c.mapping(map_, mapping_file, **options) if given else None
        with c.console.status("evaluating ..."):
            return evaluate_registered(
                model, data, out_dir=out_dir, settings=settings,
                horizon_days=horizon, every_days=every, mapping=mapping,
            )  # fmt: skip

    ev = c.run(work)
    if ev.read.get("quarantined") or ev.read.get("file_problems"):  # a log is never cut silently
        c.console.print(f"[yellow]warning:[/] read {escape(read_text(ev.read))}")
        for detail in ev.read["file_problem_details"][:3]:
            c.console.print(f"[yellow]warning:[/] {escape(detail)}")
    c.out.print(f"labels: {ev.recipe.describe()} ({ev.recipe_source})")
    rows = [(name, f"{v['value']:.3f}", f"[{v['low']:.3f}, {v['high']:.3f}]")
            for name, v in ev.pooled.items()]  # fmt: skip
    # on a line of its own: as the table's title it wrapped over four lines of the table's width
    c.out.print(f"{model}: {ev.labelled} ({ev.positives:,} snapshots labelled churn)")
    title = "pooled over the cutoffs"
    c.out.print(c.table(title, rows, ("metric", "value", "95% interval"), numbers_from=1))
    if ev.in_sample:  # the log overlaps what the model learnt
        warning = in_sample_warning(ev.in_sample, ev.rows, ev.learnt)
        c.console.print(f"[yellow]warning:[/] {escape(warning)}")
    if ev.by_history:
        bands = [(b["days observed"], f"{b['rows']:,}", f"{b['churners']:,}",
                  f"{b['observed rate']:.1%}", f"{b['mean predicted']:.1%}",
                  c.ci_cell(Estimate(b["roc_auc"], b["roc_auc low"], b["roc_auc high"]))
                  if "roc_auc" in b else "-")
                 for b in ev.by_history]  # fmt: skip
        header = ("days observed", "rows", "churners", "churned", "predicted", "ROC-AUC")
        c.out.print(c.table("by days observed at the cutoff", bands, header, numbers_from=1))
    c.out.print(ev.classification_report)
    for what, line in oracle_line(ev.oracle).items():  # a simulated log: the true hazard
        c.out.print(f"{what}: {line}")
    c.out.print(f"metrics: {ev.metrics_path}\nreport:  {ev.report_path}")
