"""Ingest: read files, validate every row, quarantine the bad ones, append the rest to the store.

Nothing is lost: every line read ends up as exactly one of a stored event (new, or a duplicate
of one already stored), a guest event, or a quarantined row with its reason.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from churnwatch.config import Settings
from churnwatch.db import connect, literal, literal_list
from churnwatch.errors import InputError, NoValidRowsError
from churnwatch.ingest.readers import (
    ColumnBatch,
    FileProblem,
    LineBatch,
    detect_format,
    expand_paths,
    first_json_keys,
    prefetch,
    read_file,
)
from churnwatch.ingest.store import EventStore, StoreTransaction
from churnwatch.ingest.validate import (
    JSON_RAW_TEXT,
    column_fields_sql,
    event_id_sql,
    json_fields_sql,
    validate_sql,
)
from churnwatch.schema import CHURN_PAGE, EVENT_KEY, REQUIRED, ColumnMapping

log = logging.getLogger(__name__)

CANONICAL_COLUMNS = (
    "ts, user_id, session_id, page, auth, method, status, level, item_in_session, location, "
    "user_agent, first_name, last_name, registration, gender, artist, song, length, value"
)


@dataclass
class IngestReport:
    """What one ingest did; also written into the store's manifest."""

    run_id: str
    store: str
    files: list[str] = field(default_factory=list)
    lines_read: int = 0
    valid: int = 0
    stored: int = 0
    duplicates: int = 0  # valid user events not stored: already stored, or repeated
    repeated: int = 0  # of those, repeats of another row of this input
    dedupe: str = "content"  # the rule that made two rows one event
    guests: int = 0
    guests_stored: int = 0
    quarantined: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    file_problems: list[dict[str, Any]] = field(default_factory=list)
    users: int = 0
    sessions: int = 0
    churn_events: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    quarantine_file: str | None = None
    seconds: float = 0.0

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.lines_read if self.lines_read else 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Progress = Callable[[str, int, int], None]  # (file, bytes done now, file size)


def ingest(
    paths: Sequence[str | Path],
    *,
    settings: Settings | None = None,
    store_dir: Path | None = None,
    mapping: ColumnMapping | None = None,
    strict: bool = False,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest `paths` (files, directories, globs) into the event store.

    Raises NoValidRowsError when nothing valid was read, and InputError with `strict` when any
    row was quarantined (after writing the quarantine file, but without touching the events).
    """
    settings = settings or Settings()
    mapping = mapping or ColumnMapping()
    store = EventStore(store_dir or settings.store_path)
    files = expand_paths(list(paths))
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    report = IngestReport(run_id=run_id, store=str(store.root), files=[str(f) for f in files])
    future = mapping.ts_max_future_days
    ts_max = started + timedelta(days=settings.ts_max_future_days if future is None else future)
    params = {"ts_min": mapping.ts_min or settings.ts_min, "ts_max": ts_max}
    report.dedupe = mapping.dedupe
    con = connect(settings)
    with store.writer(run_id) as txn:
        con.execute(f"SET temp_directory = {literal(str(txn.staging / 'spill'))}")
        stage = _Stager(con, txn.staging / "checked", event_id_sql(mapping.dedupe))
        for path in files:
            _ingest_file(path, mapping, settings, params, stage, report, progress)
        if stage.started:
            stage.view()
        _commit(con, store, txn, stage, report, strict=strict)
    report.seconds = (datetime.now(UTC) - started).total_seconds()
    return report


class _Stager:
    """Writes every checked batch of a run to a staging Parquet file; `checked` is a view over
    them all. Streaming to disk keeps memory flat however large the input."""

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path, event_id: str) -> None:
        self.con = con
        self.event_id = event_id
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.started = False
        self.chunks = 0
        self.problems: list[dict[str, Any]] = []

    def add(self, sql: str, params: dict[str, Any], source: str) -> None:
        """Run the check `sql` over relation `batch` and stage its rows."""
        path = self.folder / f"{self.chunks:06d}.parquet"
        self.chunks += 1
        self.con.execute(
            f"""COPY (SELECT $src AS source_file, *,
                   CASE WHEN reason IS NULL THEN {self.event_id} END AS event_id,
                   CAST(ts AS DATE) AS event_date
                FROM ({sql})) TO {literal(str(path))} (FORMAT parquet, COMPRESSION snappy)""",
            {**params, "src": source},
        )
        self.started = True

    def view(self) -> None:
        """Expose every staged row as view `checked`."""
        files = literal(str(self.folder / "*.parquet"))
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW checked AS SELECT * FROM read_parquet({files})"
        )

    def add_problems(self, source: str, problems: list[FileProblem]) -> None:
        self.problems.extend(
            {
                "source_file": source,
                "line": p.line,
                "reason": p.reason,
                "detail": p.detail,
                "raw": p.raw,
            }
            for p in problems
        )


def _ingest_file(
    path: Path,
    mapping: ColumnMapping,
    settings: Settings,
    params: dict[str, Any],
    stage: _Stager,
    report: IngestReport,
    progress: Progress | None,
) -> None:
    size = path.stat().st_size
    fmt = detect_format(path)
    source = str(path)
    con = stage.con

    def tick(nbytes: int) -> None:
        if progress is not None:
            progress(source, nbytes, size)

    keys = mapping.json_keys(first_json_keys(path)) if fmt == "json" else {}
    problems: list[FileProblem] = []
    items = read_file(path, fmt, chunk_bytes=settings.chunk_bytes, progress=tick)
    for item in prefetch(items, depth=2):
        if isinstance(item, FileProblem):
            problems.append(item)
            continue
        con.register("batch", item.table)
        try:
            if isinstance(item, LineBatch):
                _check_lines(stage, keys, mapping, params, source)
            else:
                _check_columns(stage, item, mapping, params, source)
        finally:
            con.unregister("batch")
        report.lines_read += item.table.num_rows
    if problems:
        stage.add_problems(source, problems)
        report.lines_read += sum(1 for p in problems if p.line is not None)
        report.file_problems.extend(
            {"file": source, "reason": p.reason, "detail": p.detail}
            for p in problems
            if p.line is None
        )


def _check_lines(
    stage: _Stager,
    keys: dict[str, str],
    mapping: ColumnMapping,
    params: dict[str, Any],
    source: str,
) -> None:
    """Check a batch of JSON lines; the fast path assumes valid UTF-8 and falls back if not."""
    for safe in (False, True):
        fields, paths = json_fields_sql(keys, constants=mapping.constants, safe_decode=safe)
        sql = validate_sql(fields, source_keys=keys, raw_text=JSON_RAW_TEXT, **_rules(mapping))
        try:
            stage.add(sql, {**params, "paths": paths}, source)
            return
        except duckdb.ConversionException:
            if safe:
                raise


def _check_columns(
    stage: _Stager,
    item: ColumnBatch,
    mapping: ColumnMapping,
    params: dict[str, Any],
    source: str,
) -> None:
    con = stage.con
    names = [n for n in item.table.column_names if n != "line"]
    columns = mapping.resolve(names)
    absent = {f: c for f, c in columns.items() if c not in names}
    if absent:
        raise InputError(
            f"the column mapping names column(s) {sorted(absent.values())} that the file does not "
            f"have; it has {names}"
        )
    types = {
        row[0]: row[1]
        for row in con.execute("SELECT column_name, column_type FROM (DESCRIBE batch)").fetchall()
    }
    fields = column_fields_sql(columns, types, mapping.constants)
    stage.add(validate_sql(fields, source_keys=columns, **_rules(mapping)), params, source)


def _rules(mapping: ColumnMapping) -> dict[str, Any]:
    """The validation options a mapping sets: time unit and format, required fields."""
    required = (*REQUIRED, EVENT_KEY) if mapping.key_column else REQUIRED
    return {"ts_unit": mapping.ts_unit, "ts_format": mapping.ts_format, "required": required}


def _commit(
    con: duckdb.DuckDBPyConnection,
    store: EventStore,
    txn: StoreTransaction,
    stage: _Stager,
    report: IngestReport,
    *,
    strict: bool,
) -> None:
    """Count, write the quarantine, deduplicate against the store, and commit."""
    if stage.problems:
        con.register("problems_tbl", pa.Table.from_pylist(stage.problems, schema=_PROBLEM_SCHEMA))
    _count(con, stage, report)
    if report.quarantined or report.file_problems:
        report.quarantine_file = _write_quarantine(con, store, stage, report)
    if report.valid == 0:
        error = NoValidRowsError(
            f"expected at least one valid event in {len(report.files)} file(s). Got none: "
            f"{report.lines_read} line(s) read, {report.guests} guest event(s), "
            f"{report.quarantined} quarantined"
            + (f" (see {report.quarantine_file})" if report.quarantine_file else "")
            + "".join(f"; {p['detail']}" for p in report.file_problems[:3])
        )
        error.quarantine_file = report.quarantine_file
        raise error
    if strict and (report.quarantined or report.file_problems):
        raise InputError(
            f"--strict: expected no bad input. Got {report.quarantined} quarantined row(s) "
            f"{report.quarantined_by_reason} and {len(report.file_problems)} file problem(s); "
            f"nothing was stored. Quarantine: {report.quarantine_file}"
        )
    _describe(con, report)
    new_files: dict[str, list[Path]] = {}
    for kind, where in (("events", "user_id <> ''"), ("guests", "user_id = ''")):
        new_rows, repeats = _dedupe(con, store, where, txn.staging / kind, kind=kind)
        if kind == "events":
            report.stored = new_rows
            report.duplicates = report.valid - new_rows
            report.repeated = repeats
        else:
            report.guests_stored = new_rows
        new_files[kind] = sorted((txn.staging / kind).rglob("*.parquet"))
    txn.commit(new_files, report.to_dict(), con=con)


def _count(con: duckdb.DuckDBPyConnection, stage: _Stager, report: IngestReport) -> None:
    """Valid, guest and quarantined rows by reason, from the checked lines and the problems
    found while reading (a problem without a line is a file problem, counted apart)."""
    if stage.started:
        for valid, guest, reason, n in con.execute(
            """SELECT reason IS NULL AND user_id <> '', reason IS NULL AND user_id = '', reason,
                      count(*) FROM checked GROUP BY ALL"""
        ).fetchall():
            if valid:
                report.valid += n
            elif guest:
                report.guests += n
            else:
                report.quarantined_by_reason[reason] = n
    for p in stage.problems:
        if p["line"] is not None:
            reasons = report.quarantined_by_reason
            reasons[p["reason"]] = reasons.get(p["reason"], 0) + 1
    report.quarantined_by_reason = dict(sorted(report.quarantined_by_reason.items()))
    report.quarantined = sum(report.quarantined_by_reason.values())


def _write_quarantine(
    con: duckdb.DuckDBPyConnection, store: EventStore, stage: _Stager, report: IngestReport
) -> str:
    """Every rejected line, with its reason, to the store's quarantine folder; the path."""
    qdir = store.root / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True)
    qpath = qdir / f"{report.run_id}.jsonl"
    rows = (
        "SELECT source_file, line, reason, detail, raw_text::VARCHAR AS raw FROM checked "
        "WHERE reason IS NOT NULL"
        if stage.started
        else "SELECT * FROM problems_tbl WHERE false"
    )
    problems_sql = (
        "UNION ALL SELECT source_file, line, reason, detail, raw FROM problems_tbl"
        if stage.problems
        else ""
    )
    con.execute(
        f"COPY ({rows} {problems_sql} ORDER BY source_file, line NULLS FIRST) "
        f"TO {literal(str(qpath))} (FORMAT json)"
    )
    return str(qpath)


_PROBLEM_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw", pa.string()),
    ]
)


def _dedupe(
    con: duckdb.DuckDBPyConnection,
    store: EventStore,
    where: str,
    out_dir: Path,
    *,
    kind: str,
) -> tuple[int, int]:
    """Write the valid rows not yet in the store, once each, partitioned by date. Returns the
    rows written and the rows that repeated another row of this input."""
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW staged AS
        SELECT {CANONICAL_COLUMNS}, event_id, event_date, source_file, line AS source_line
        FROM checked WHERE reason IS NULL AND {where}"""
    )
    day_list, repeats = con.execute(
        "SELECT list(DISTINCT event_date), count(*) - count(DISTINCT (user_id, ts, event_id)) "
        "FROM staged"
    ).fetchall()[0]
    dates = set(day_list or [])
    if not dates:
        return 0, 0
    existing = store.files(kind, dates=dates)
    anti = ""
    if existing:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW existing AS SELECT user_id, ts, event_id "
            f"FROM read_parquet({literal_list(existing)}, hive_partitioning = false, "
            "union_by_name = true)"
        )
        anti = "ANTI JOIN existing e USING (user_id, ts, event_id)"
    once = (
        """QUALIFY row_number() OVER (PARTITION BY s.user_id, s.ts, s.event_id
                                      ORDER BY s.source_file, s.source_line) = 1"""
        if repeats
        else ""
    )
    con.execute(
        f"""COPY (SELECT s.* FROM staged s {anti} {once})
        TO {literal(str(out_dir))} (FORMAT parquet, PARTITION_BY (event_date),
             WRITE_PARTITION_COLUMNS true, FILENAME_PATTERN 'part-{{uuid}}', COMPRESSION zstd)"""
    )
    written = [str(p) for p in out_dir.rglob("*.parquet")]
    if not written:
        return 0, int(repeats)
    stored = con.execute("SELECT count(*) FROM read_parquet($f)", {"f": written}).fetchall()
    return int(stored[0][0]), int(repeats)


def _describe(con: duckdb.DuckDBPyConnection, report: IngestReport) -> None:
    """Users, sessions, date range and churn events among the valid user rows read."""
    users, sessions, first, last, churn = con.execute(
        """SELECT count(DISTINCT user_id), count(DISTINCT (user_id, session_id)), min(ts), max(ts),
                  count(DISTINCT (user_id, ts)) FILTER (page = $churn)
           FROM checked WHERE reason IS NULL AND user_id <> ''""",
        {"churn": CHURN_PAGE},
    ).fetchall()[0]
    report.users = int(users)
    report.sessions = int(sessions)
    report.churn_events = int(churn)
    report.first_ts = first.isoformat() if first else None
    report.last_ts = last.isoformat() if last else None
