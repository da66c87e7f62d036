"""Build the snapshot table: one row per (user, cutoff) with features and label."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnwatch.config import Settings
from churnwatch.db import event_files
from churnwatch.errors import InputError
from churnwatch.features.catalog import CHURN_PAGES, FeatureSpec, catalog
from churnwatch.features.engines import Engine, make_engine, store_files
from churnwatch.features.sql import churn_days_sql, daily_sql, snapshots_sql
from churnwatch.ingest.store import EventStore
from churnwatch.labels import US_PER_DAY, ChurnDefinition, CutoffSchedule

log = logging.getLogger(__name__)


@dataclass
class SnapshotReport:
    """What a snapshot build produced, per cutoff and in total."""

    rows: int = 0
    features: int = 0
    positives: int = 0
    censored: int = 0
    per_cutoff: list[dict[str, Any]] = field(default_factory=list)
    engine: str = "duckdb"
    seconds: float = 0.0
    out: str | None = None


def build_snapshots(
    store: EventStore,
    *,
    definition: ChurnDefinition | None = None,
    schedule: CutoffSchedule | None = None,
    engine: str | Engine = "duckdb",
    settings: Settings | None = None,
    out: Path | None = None,
    until: datetime | None = None,
    spec: FeatureSpec | None = None,
) -> tuple[pa.Table, SnapshotReport]:
    """Compute snapshots from the store; write them to `out` (Parquet) when given.

    `until` treats the store as if it ended there (events at or after it are ignored): the
    leakage tests use it, and so does scoring "as of" a past date. `spec` picks the feature
    catalog (default: eventsim's; a model's recipe carries its own).
    """
    started = time.perf_counter()
    check_out(out)
    definition = definition or ChurnDefinition()
    schedule = schedule or CutoffSchedule()
    settings = settings or Settings()
    owned = isinstance(engine, str)
    eng: Engine = make_engine(engine, settings) if isinstance(engine, str) else engine
    try:
        return _build(store, eng, definition, schedule, out, until, started, spec or FeatureSpec())
    finally:
        if owned:
            eng.close()


def check_out(out: Path | None) -> None:
    """Snapshots are written as Parquet (its types are what training reads back): refuse any
    other name before an engine starts, rather than write Parquet under a .csv name."""
    if out is not None and out.suffix != ".parquet":
        raise InputError(
            f"expected --out ending in .parquet (snapshots are written as Parquet). "
            f"Got {out.name!r}."
        )


def _build(
    store: EventStore,
    eng: Engine,
    definition: ChurnDefinition,
    schedule: CutoffSchedule,
    out: Path | None,
    until: datetime | None,
    started: float,
    spec: FeatureSpec,
) -> tuple[pa.Table, SnapshotReport]:
    sql = prepare(store, eng, definition, schedule, until, spec)
    table = _typed(eng.query(sql + " ORDER BY cutoff_day, user_id"), spec)
    report = _summarise(table, eng.name, spec)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out, compression="zstd")
        report.out = str(out)
    report.seconds = time.perf_counter() - started
    return table, report


SPARKIFY_MARK = "NextSong"  # a log with song plays is an eventsim log
CatalogChoice = Literal["auto", "sparkify", "events"]


def spec_for(
    store: EventStore,
    definition: ChurnDefinition,
    schedule: CutoffSchedule,
    *,
    features: CatalogChoice = "auto",
    event_types: int = 20,
) -> FeatureSpec:
    """The catalog that suits the store's log: eventsim's when it has song plays (or when
    asked), else one built from its `event_types` most frequent event types and its value
    column, with windows of the cutoff spacing, the horizon and twice the horizon."""
    if features not in ("auto", "sparkify", "events"):
        raise InputError(f"features have to be auto, sparkify or events. Got {features!r}.")
    if event_types < 1:
        raise InputError(f"event types have to be >= 1. Got {event_types}.")
    files = store_files(store)
    con = duckdb.connect()
    try:
        con.execute(f"CREATE VIEW e AS SELECT * FROM {event_files(files)}")
        has_value = "value" in [r[0] for r in con.execute("DESCRIBE e").fetchall()]
        pages = con.execute(
            "SELECT page, count(*) AS n FROM e GROUP BY page ORDER BY n DESC, page"
        ).fetchall()
        value = has_value and bool(con.execute("SELECT count(value) FROM e").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()
    names = [p for p, _ in pages if p not in CHURN_PAGES]
    if features == "sparkify" or (features == "auto" and SPARKIFY_MARK in names):
        return FeatureSpec()
    windows = sorted({schedule.every_days, definition.horizon_days, 2 * definition.horizon_days})
    mapping = store.mapping() if value else None
    return FeatureSpec(
        kind="events", events=tuple(names[:event_types]), value=value, windows=tuple(windows),
        value_name=(mapping.columns.get("value", "") if mapping else ""),
    )  # fmt: skip


def prepare(
    store: EventStore,
    eng: Engine,
    definition: ChurnDefinition,
    schedule: CutoffSchedule,
    until: datetime | None = None,
    spec: FeatureSpec | None = None,
) -> str:
    """Load the events into `eng`, materialise the daily tables, and return the snapshot
    query (one row per user and cutoff, columns cutoff_day, user_id, features, label)."""
    spec = spec or FeatureSpec()
    files = store_files(store)
    until_us = None if until is None else int(until.timestamp() * 1_000_000)
    eng.load_events(files, until_us=until_us, extra=("value",) if spec.value else ())
    first_us, last_us = (
        eng.query("SELECT MIN(ts_us) AS a, MAX(ts_us) AS b FROM ev").to_pylist()[0].values()
    )
    if first_us is None:
        raise InputError("expected events in the store before the cutoff. Got none.")
    first = datetime.fromtimestamp(first_us / 1e6, tz=UTC)
    last = datetime.fromtimestamp(last_us / 1e6, tz=UTC)
    cutoffs = schedule.days(first, last)
    if not cutoffs:
        raise InputError(
            f"expected at least one cutoff between {first:%Y-%m-%d} and {last:%Y-%m-%d}: the "
            f"data spans fewer days than the {schedule.min_history_days} days of history required"
        )
    eng.register("cutoffs", pa.table({"cutoff_day": pa.array(cutoffs, pa.int64())}))
    eng.register(
        "params",
        pa.table(
            {
                "horizon_days": pa.array([definition.horizon_days], pa.int64()),
                "inactivity_days": pa.array([definition.inactivity_days], pa.int64()),
                "data_start_day": pa.array([first_us // US_PER_DAY], pa.int64()),
                "data_end_us": pa.array([last_us], pa.int64()),
            }
        ),
    )
    eng.materialise("daily", daily_sql(spec))
    eng.materialise("churn_days", churn_days_sql(definition))
    return snapshots_sql(definition, spec)


def _typed(table: pa.Table, spec: FeatureSpec) -> pa.Table:
    """Add the cutoff as a UTC timestamp and fix the column types, the same on any engine."""
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        "user_id": table["user_id"].cast(pa.string()),
        "cutoff": pc.multiply(table["cutoff_day"].cast(pa.int64()), US_PER_DAY).cast(
            pa.timestamp("us", tz="UTC")
        ),
    }
    for f in catalog(spec):
        name, kind = f.name, f.kind
        target = (
            pa.string() if kind == "category" else pa.int64() if kind == "count" else pa.float64()
        )
        cols[name] = table[name].cast(target)
    cols["label"] = table["label"].cast(pa.int8())
    return pa.table(cols)


def _summarise(table: pa.Table, engine: str, spec: FeatureSpec) -> SnapshotReport:
    report = SnapshotReport(engine=engine, rows=table.num_rows, features=len(catalog(spec)))
    cut = table["cutoff"].to_pylist()
    lab = table["label"].to_pylist()
    per: dict[datetime, dict[str, int]] = {}
    for c, y in zip(cut, lab, strict=True):
        row = per.setdefault(c, {"snapshots": 0, "positives": 0, "censored": 0})
        row["snapshots"] += 1
        if y is None:
            row["censored"] += 1
        elif y == 1:
            row["positives"] += 1
    report.per_cutoff = [{"cutoff": c.date().isoformat(), **v} for c, v in sorted(per.items())]
    report.positives = sum(r["positives"] for r in report.per_cutoff)
    report.censored = sum(r["censored"] for r in report.per_cutoff)
    return report
