"""Serving commands: the HTTP API, batch scoring and the retention plan."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from churnwatch.cli import common as c
from churnwatch.config import Settings
from churnwatch.errors import ConfigError
from churnwatch.ingest.store import EventStore
from churnwatch.models.plan import Offer
from churnwatch.serving.app import create_app
from churnwatch.serving.batch import PlanReport, ScoreReport, check_job, plan_store, score_store

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
    c.run(lambda: _check_address(host, port))  # before the model loads, which takes seconds
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level)


def _check_address(host: str, port: int) -> None:
    """That the server can listen there: uvicorn said so only after loading the model, in its
    log, and exited with code 3."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"expected --host to name an interface of this machine. Got {host!r} ({exc.strerror})"
        ) from exc
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            hint = (" (another `churnwatch serve`?); --port picks another"
                    if exc.errno == errno.EADDRINUSE else "")  # fmt: skip
            raise ConfigError(
                f"expected an address to listen on. Got {host}:{port}: {exc.strerror}{hint}"
            ) from exc


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
    spark_conf: c.SparkConf = None,
) -> None:
    """Score every active user with the champion: probability, risk band, top reasons."""
    settings = Settings()

    def work() -> ScoreReport:
        when = c.parse_time(as_of)
        events = EventStore(store or settings.store_path)
        check_job(events, out_path)  # before Spark takes seconds to start
        with c.engine(engine, settings, master=spark_master, conf=spark_conf or ()) as eng:
            return score_store(
                settings=settings, out=out_path, engine=eng, as_of=when, model_ref=model,
                store=events,
            )  # fmt: skip

    with c.console.status(f"scoring on {engine}"):
        report = c.run(work)
    c.out.print(
        f"scored {report.users:,} active users as of {report.cutoff} with {report.model} on "
        f"{report.engine} in {report.seconds:.1f} s: {report.high:,} in the high band -> "
        f"{report.out}"
    )


@app.command()
def plan(
    budget: Annotated[float, typer.Option(min=0, help="What the campaign may spend in all.")],
    offer_cost: Annotated[
        float, typer.Option(min=0, help="What contacting one user costs (the offer).")
    ],
    save_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of would-be churners an offer keeps.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="The plan: .csv or .parquet, every user in order "
            f"(default: plan.csv in {c.DATA_DIR}).",
        ),
    ] = None,
    period_days: Annotated[
        int, typer.Option(min=1, help="A user's value is counted over this many days.")
    ] = 90,
    store: c.Store = None,
    as_of: c.AsOf = None,
    model: Annotated[
        str | None, typer.Option(help="Model (default models:/churnwatch@champion).")
    ] = None,
) -> None:
    """Whom to contact this week: the users whose expected saved value most exceeds the offer.

    Value: the level's price (settings: level_prices, per 30 days) or the log's value column.

    Expected net gain = P(churn) x value x save rate - offer cost.

    Users are contacted, best first, while it is positive and the budget lasts."""
    settings = Settings()
    out_path = c.output(out, "plan.csv", settings)

    def work() -> PlanReport:
        offer = Offer(budget=budget, offer_cost=offer_cost, save_rate=save_rate,
                      period_days=period_days)  # fmt: skip
        with c.console.status("planning"):
            return plan_store(
                settings=settings, out=out_path, offer=offer, as_of=c.parse_time(as_of),
                model_ref=model, store=EventStore(store or settings.store_path),
            )  # fmt: skip

    report = c.run(work)
    s = report.summary
    rows = [
        ("users scored", f"{s['users_scored']:,}"),
        ("users to contact", f"{s['users_contacted']:,}"),
        ("cost", f"{s['cost']:,.2f} of {s['budget']:,.2f}"),
        ("expected churners reached", f"{s['expected_churners_reached']:,.1f}"),
        ("value at risk, all users", f"{s['expected_value_at_risk']:,.2f}"),
        ("expected value saved", f"{s['expected_value_saved']:,.2f}"),
        ("expected net", f"{s['expected_net']:,.2f}"),
    ]
    c.out.print(c.table(f"plan as of {report.cutoff} with {report.model}", rows))
    if report.why_nobody:
        c.out.print(f"nobody to contact: {report.why_nobody}")
    c.out.print(f"plan: {report.out}")
