"""Serving commands: the HTTP API and batch scoring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from churnwatch.cli import common as c
from churnwatch.config import Settings
from churnwatch.ingest.store import EventStore
from churnwatch.serving.app import create_app
from churnwatch.serving.batch import ScoreReport, score_store

app = typer.Typer()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    model: Annotated[
        str | None, typer.Option(help="Model to serve (default models:/churnwatch@champion).")
    ] = None,
    store: c.Store = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve churn scores over HTTP: /predict, /predict/batch, /users/at-risk, /events, /docs."""
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
    store: c.Store = None,
    engine: c.EngineName = "duckdb",
    as_of: c.AsOf = None,
    model: Annotated[
        str | None, typer.Option(help="Model (default models:/churnwatch@champion).")
    ] = None,
    spark_master: c.SparkMaster = None,
) -> None:
    """Score every active user with the champion: probability, risk band, top reasons."""
    settings = Settings()

    def work() -> ScoreReport:
        when = c.parse_time(as_of)
        with c.engine(engine, settings, master=spark_master) as eng:
            return score_store(
                settings=settings, out=out_path, engine=eng, as_of=when, model_ref=model,
                store=EventStore(store or settings.store_path),
            )  # fmt: skip

    with c.console.status(f"scoring on {engine}"):
        report = c.run(work)
    c.out.print(
        f"scored {report.users:,} active users as of {report.cutoff} with {report.model} on "
        f"{report.engine} in {report.seconds:.1f} s: {report.high:,} in the high band -> "
        f"{report.out}"
    )
