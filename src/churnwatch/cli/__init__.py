"""The `churnwatch` command line: commands parse their options and delegate to the library.

Each group of commands is a module of this package; the root loads a command's module only
when that command runs, so that `churnwatch ingest` does not pay for MLflow, FastAPI and the
model libraries (about 1.5 s of imports it never uses).
"""

from __future__ import annotations

import importlib
import logging
from typing import Annotated, Any

import typer
from rich.logging import RichHandler
from typer.core import TyperGroup

from churnwatch.cli.common import console, run
from churnwatch.config import check_environment

# command -> (module, Typer attribute, whether it is a group of subcommands, its one-line help),
# in help order. The help is what `churnwatch --help` lists without importing every command's
# module (a test checks it against each command's own).
COMMANDS: dict[str, tuple[str, str, bool, str]] = {
    "ingest": ("churnwatch.cli.data", "app", False,
               "Validate logs and append them to the event store; bad rows go to the quarantine."),
    "simulate": ("churnwatch.cli.data", "app", False,
                 "Write a synthetic Sparkify-schema log with a known churn hazard (and its ground "
                 "truth)."),
    "snapshots": ("churnwatch.cli.data", "app", False,
                  "Build the snapshot table: one row per (user, cutoff), features and label (or "
                  "null)."),
    "features": ("churnwatch.cli.data", "app", False,
                 "The feature catalog: how many features of each family and window."),
    "train": ("churnwatch.cli.modelling", "app", False,
              "Backtest candidate models out of time, choose one, refit it on all labelled data."),
    "evaluate": ("churnwatch.cli.modelling", "app", False,
                 "Score any log with a registered model: metrics with intervals, plots and a "
                 "report."),
    "serve": ("churnwatch.cli.serving", "app", False,
              "Serve churn scores over HTTP: /predict, /predict/batch, /users/at-risk, /events, "
              "/docs."),
    "score": ("churnwatch.cli.serving", "app", False,
              "Score every active user with the champion: probability, risk band, top reasons."),
    "plan": ("churnwatch.cli.serving", "app", False,
             "Whom to contact this week: the users whose expected saved value most exceeds the "
             "offer."),
    "retrain": ("churnwatch.cli.operations", "app", False,
                "Ingest new data and train a challenger; promote it only if it beats the "
                "champion."),
    "monitor": ("churnwatch.cli.operations", "app", False,
                "Drift, realised performance of matured cohorts and alerts, against the champion."),
    "demo": ("churnwatch.cli.operations", "app", False,
             "The drift scenario end to end: monitoring, alerts and retraining, week by week."),
    "alerts": ("churnwatch.cli.operations", "alerts", True, "Alerts raised by monitoring."),
    "models": ("churnwatch.cli.operations", "models", True, "The model registry."),
}  # fmt: skip


def load_command(ctx: Any, cmd_name: str) -> Any:
    """The click command `cmd_name`, its module imported."""
    module, attr, is_group, _ = COMMANDS[cmd_name]
    typer_app = getattr(importlib.import_module(module), attr)
    group = typer.main.get_group(typer_app)
    if is_group:
        group.name = cmd_name
        return group
    return group.get_command(ctx, cmd_name)


class LazyGroup(TyperGroup):
    """A command group whose commands are imported on first use (click's lazy-group pattern).
    While the group's own help is written, a command is only its name and one-line help, so
    `churnwatch --help` imports none of them. Contexts and commands are typed Any: typer
    vendors its own click."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        if self._listing:
            return typer.core.TyperCommand(cmd_name, short_help=COMMANDS[cmd_name][3])
        return load_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="churnwatch",
    cls=LazyGroup,
    help="Predict, explain and monitor subscriber churn from music-streaming activity logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    run(check_environment)  # once, before any command reads a setting
