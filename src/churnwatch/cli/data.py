"""Data commands: ingest, simulate, snapshots, features."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from churnwatch.cli import common as c
from churnwatch.config import Settings
from churnwatch.features.build import SnapshotReport, build_snapshots, check_out, spec_for
from churnwatch.features.catalog import catalog, markdown
from churnwatch.ingest.pipeline import IngestReport
from churnwatch.ingest.pipeline import ingest as run_ingest
from churnwatch.ingest.store import EventStore
from churnwatch.labels import CutoffSchedule
from churnwatch.schema import CHURN_PAGE
from churnwatch.simulate import SimConfig, SimResult, output_format, summary
from churnwatch.simulate import simulate as run_simulate

app = typer.Typer()


@app.command()
def ingest(
    paths: Annotated[
        list[str], typer.Argument(help="Files, directories or globs to read; - reads a piped log.")
    ],
    store: c.Store = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail (exit 1) if any row is quarantined.")
    ] = False,
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
    """Validate logs and append them to the event store; bad rows go to the quarantine.

    Every option but --store and --strict can also be set in --mapping-file."""
    settings = Settings()

    def work() -> IngestReport:
        mapping = c.mapping(
            map_, mapping_file, ts_unit=ts_unit, ts_format=ts_format, event_name=event_name,
            dedupe=dedupe, ts_min=ts_min, ts_max_future_days=ts_max_future_days,
            encoding=encoding, anonymous=anonymous,
        )  # fmt: skip
        with c.bytes_progress("reading") as advance:
            return run_ingest(
                paths, settings=settings, store_dir=store, mapping=mapping, strict=strict,
                progress=advance, on_files=advance.files,
            )  # fmt: skip

    report = c.run(work)
    c.out.print(c.table(f"ingest {report.run_id}", _ingest_rows(report)))
    for problem in report.file_problems:
        c.console.print(f"[yellow]warning:[/] {escape(problem['detail'])}")
    bad_text = report.quarantined_by_reason.get("invalid_utf8", 0)
    if bad_text and not (report.mapping or {}).get("encoding"):
        rows = "1 row is" if bad_text == 1 else f"{bad_text:,} rows are"
        c.console.print(
            f"[yellow]hint:[/] {rows} not valid UTF-8. If the files were saved in another "
            "encoding, ingest them again with it, e.g. --encoding cp1252 (Excel's 'CSV (Comma "
            "delimited)' in Western locales): the rows already stored are not stored twice."
        )


def _ingest_rows(r: IngestReport) -> list[tuple[str, str]]:
    return [
        ("files", f"{len(r.files):,}"),
        ("lines read", f"{r.lines_read:,}"),
        ("valid user events", f"{r.valid:,}"),
        ("  stored (new)", f"{r.stored:,}"),
        ("  already in the store", f"{r.duplicates - r.repeated:,}"),
        ("  repeated in this input", f"{r.repeated:,} (dedupe {r.dedupe})"),
        ("guest / logged-out events", f"{r.guests:,} ({r.guests_stored:,} new)"),
        ("quarantined", f"{r.quarantined:,} ({r.quarantine_rate:.2%})"),
        *((f"  {reason}", f"{n:,}") for reason, n in r.quarantined_by_reason.items()),
        ("users", f"{r.users:,}"),
        ("sessions", f"{r.sessions:,}"),
        ("date range (UTC)", f"{(r.first_ts or '')[:16]} .. {(r.last_ts or '')[:16]}"),
        (f"{CHURN_PAGE} events", f"{r.churn_events:,}"),
        ("store", r.store),
        ("quarantine file", r.quarantine_file or "-"),
        ("time", f"{r.seconds:.1f} s"),
    ]


@app.command()
def simulate(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output: .jsonl.gz, .jsonl or .parquet "
            f"(default: simulated/sparkify_sim.jsonl.gz in {c.DATA_DIR}).",
        ),
    ] = None,
    users: Annotated[int, typer.Option(min=1, help="Users at the start.")] = 500,
    days: Annotated[int, typer.Option(min=1, help="Days to simulate.")] = 60,
    seed: Annotated[
        int, typer.Option(min=0, max=c.SEED_MAX, help="Random seed (same seed, same bytes).")
    ] = 0,
    drift_day: Annotated[
        int | None, typer.Option(help="From this day, adverts double and errors triple.")
    ] = None,
) -> None:
    """Write a synthetic Sparkify-schema log with a known churn hazard (and its ground truth)."""
    cfg = c.run(lambda: SimConfig(users=users, days=days, seed=seed, drift_day=drift_day))
    out_path = c.output(out, "simulated/sparkify_sim.jsonl.gz", Settings())
    c.run(lambda: output_format(out_path))  # before the bar: an error comes alone
    columns = (TextColumn("[bold]simulating"), BarColumn(), MofNCompleteColumn(),
               TextColumn("days"), TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=c.console) as bar:
        task = bar.add_task("days", total=days)
        result = c.run(lambda: run_simulate(cfg, out_path, progress=lambda n: bar.advance(task, n)))
    c.out.print(c.table("simulate", _simulate_rows(result)))


def _simulate_rows(result: SimResult) -> list[tuple[str, str]]:
    s = summary(result)
    return [
        ("events", f"{s['events']:,}"),
        ("guest events", f"{result.guest_events:,}"),
        ("users", f"{s['users']:,}"),
        ("churned", f"{s['churned']:,} ({s['churn_rate']:.1%})"),
        ("NextSong share", f"{s['next_song_share']:.1%}"),
        ("log", str(result.out)),
        ("ground truth", str(result.truth)),
        ("time", f"{s['seconds']:.1f} s ({s['events'] / max(s['seconds'], 1e-9):,.0f} events/s)"),
    ]


@app.command()
def snapshots(
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help=f"Snapshot table to write, Parquet (default: snapshots.parquet in {c.DATA_DIR}).",
        ),
    ] = None,
    store: c.Store = None,
    engine: c.EngineName = "duckdb",
    horizon: c.Horizon = 14,
    every: c.Every = 7,
    min_history: c.MinHistory = 14,
    definition: c.DefinitionKind = "cancellation",
    inactivity_days: c.InactivityDays = 30,
    include_downgrade: c.IncludeDowngrade = False,
    cutoff: Annotated[
        list[str] | None, typer.Option(help="Explicit cutoff date YYYY-MM-DD (repeatable).")
    ] = None,
    spark_master: c.SparkMaster = None,
    spark_conf: c.SparkConf = None,
    features: c.Features = "auto",
    event_types: c.EventTypes = 20,
) -> None:
    """Build the snapshot table: one row per (user, cutoff), features and label (or null)."""
    settings = Settings()
    out_path = c.output(out, "snapshots.parquet", settings)

    def work() -> SnapshotReport:
        dates = c.parse_dates(cutoff or [], "--cutoff")
        schedule = CutoffSchedule(every_days=every, min_history_days=min_history, explicit=dates)
        churn = c.definition(definition, horizon, inactivity_days, include_downgrade)
        events = EventStore(store or settings.store_path)
        spec = spec_for(events, churn, schedule, features=features, event_types=event_types)  # type: ignore[arg-type]
        check_out(out_path)  # before Spark takes seconds to start
        with c.engine(engine, settings, master=spark_master, conf=spark_conf or ()) as eng:
            _, report = build_snapshots(
                events, definition=churn, schedule=schedule, engine=eng, settings=settings,
                out=out_path, spec=spec,
            )  # fmt: skip
        return report

    with c.console.status(f"building snapshots on {engine} ..."):
        report = c.run(work)
    rows = [(r["cutoff"], f"{r['snapshots']:,}", f"{r['positives']:,}", f"{r['censored']:,}")
            for r in report.per_cutoff]  # fmt: skip
    rows.append(("total", f"{report.rows:,}", f"{report.positives:,}", f"{report.censored:,}"))
    header = ("cutoff", "snapshots", "positives", "censored")
    c.out.print(c.table(f"snapshots ({report.engine})", rows, header, numbers_from=0))
    c.out.print(
        f"{report.features} features, {report.rows:,} rows -> {report.out}  "
        f"({report.seconds:.1f} s on {report.engine})"
    )


@app.command("features")
def features_(
    list_: Annotated[bool, typer.Option("--list", help="List every feature.")] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Every feature as Markdown (docs/features.md).")
    ] = False,
    store: Annotated[
        Path | None,
        typer.Option(help="The catalog this store's log gets (default: eventsim's catalog)."),
    ] = None,
    horizon: c.Horizon = 14,
    every: c.Every = 7,
    features: c.Features = "auto",
    event_types: c.EventTypes = 20,
) -> None:
    """The feature catalog: how many features of each family and window.

    --list shows each feature's name, window, type, drift watch and description; --store the
    catalog a store's log gets (its windows follow --every and --horizon)."""
    spec = None
    if store is not None:
        churn = c.definition("cancellation", horizon, 30, False)
        spec = c.run(lambda: spec_for(EventStore(store), churn, CutoffSchedule(every_days=every),
                                      features=features, event_types=event_types))  # type: ignore[arg-type]  # fmt: skip
        c.console.print(spec.describe(), markup=False)
    feats = catalog(spec)
    if as_markdown:
        print(markdown(), end="")
    elif list_:
        rows: list[tuple[str, ...]] = [(f.name + (" *" if f.seed else ""), f.window, f.kind,
                 "yes" if f.drift else "no", f.description) for f in feats]  # fmt: skip
        header = ("name", "window", "type", "drift", "description")
        c.out.print(c.table(f"{len(feats)} features (* = seed feature)", rows, header))
    else:
        counts = Counter((f.family, f.window) for f in feats)
        windows = list(dict.fromkeys(f.window for f in feats))
        families = list(dict.fromkeys(f.family for f in feats))
        rows = [(fam, *(str(counts[fam, w] or "") for w in windows)) for fam in families]
        title = f"{len(feats)} features by family and window (--list for each one)"
        c.out.print(c.table(title, rows, ("family", *windows), numbers_from=1))
