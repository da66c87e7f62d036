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

from churnwatch.cli.common import console

# command -> (module, Typer attribute, whether it is a group of subcommands), in help order
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "ingest": ("churnwatch.cli.data", "app", False),
    "simulate": ("churnwatch.cli.data", "app", False),
    "snapshots": ("churnwatch.cli.data", "app", False),
    "features": ("churnwatch.cli.data", "app", False),
    "train": ("churnwatch.cli.modelling", "app", False),
    "evaluate": ("churnwatch.cli.modelling", "app", False),
    "serve": ("churnwatch.cli.serving", "app", False),
    "score": ("churnwatch.cli.serving", "app", False),
    "plan": ("churnwatch.cli.serving", "app", False),
    "retrain": ("churnwatch.cli.operations", "app", False),
    "monitor": ("churnwatch.cli.operations", "app", False),
    "demo": ("churnwatch.cli.operations", "app", False),
    "alerts": ("churnwatch.cli.operations", "alerts", True),
    "models": ("churnwatch.cli.operations", "models", True),
}


class LazyGroup(TyperGroup):
    """A command group whose commands are imported on first use (click's lazy-group pattern).
    Contexts and commands are typed Any: typer vendors its own click."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module, attr, is_group = COMMANDS[cmd_name]
        typer_app = getattr(importlib.import_module(module), attr)
        group = typer.main.get_group(typer_app)
        if is_group:
            group.name = cmd_name
            return group
        return group.get_command(ctx, cmd_name)


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
