"""Ingest: read files, validate every row, quarantine the bad ones, append the rest to the store.

Nothing is lost: every line read ends up as exactly one of a stored event (new, or a duplicate
of one already stored), a guest event, or a quarantined row with its reason.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import secrets
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from churnwatch.config import Settings
from churnwatch.db import connect, event_files, literal
from churnwatch.errors import InputError, NoValidRowsError
from churnwatch.ingest.readers import (
    DELIMITER_KEY,
    BatchStream,
    FileProblem,
    Input,
    Item,
    LineBatch,
    detect_format,
    expand_paths,
    first_json_keys,
    hive_partitions,
    prefetch,
    read_file,
    unpack_archives,
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
    # how the files were read; None for events a client posted (not a feed's own format)
    mapping: dict[str, Any] | None = None
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


Progress = Callable[[str, int, int], None]  # (file, bytes done now, file size; 0: not known)


def ingest(
    paths: Sequence[str | Path],
    *,
    settings: Settings | None = None,
    store_dir: Path | None = None,
    mapping: ColumnMapping | None = None,
    strict: bool = False,
    progress: Progress | None = None,
    feed: bool = True,
    on_files: Callable[[list[Path]], None] | None = None,
    stdin: BinaryIO | None = None,
) -> IngestReport:
    """Ingest `paths` (files, directories, globs) into the event store.

    With `feed`, the files are the log's own export, and the manifest records `mapping` as
    the way to read later files of the feed (`EventStore.mapping`); the API's posted events
    are not. A zip or tar archive is read as its members (`unpack_archives`). `on_files` is told
    the files found, before any is read; `progress` each file's bytes as they are read. A path
    `-` is the log piped in on `stdin` (default: the process's), in any format or compression
    `ingest` reads from a file; its rows are named `stdin-<hash of its bytes>`, so the same log
    piped in again is known under `--dedupe line`.

    Raises NoValidRowsError when nothing valid was read, and InputError with `strict` when any
    row was quarantined (after writing the quarantine file, but without touching the events).
    """
    settings = settings or Settings()
    mapping = mapping or ColumnMapping()
    store = EventStore(store_dir or settings.store_path)
    files = [Input(f, str(f)) for f in expand_paths([p for p in paths if str(p) != STDIN])]
    piped = (stdin or _stdin()) if any(str(p) == STDIN for p in paths) else None
    started = datetime.now(UTC)
    run_id = started.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
    report = IngestReport(run_id=run_id, store=str(store.root))
    future = mapping.ts_max_future_days
    ts_max = started + timedelta(days=settings.ts_max_future_days if future is None else future)
    params = {"ts_min": mapping.ts_min or settings.ts_min, "ts_max": ts_max}
    report.dedupe = mapping.dedupe
    report.mapping = mapping.to_record() if feed else None
    con = connect(settings)
    # each thread hands its partitioned rows on every this many rows: with the default
    # (524,288) the day-partitioned write of the 26M-event log took 54 s and 2.1 GB, with
    # 32,768 20 s and 0.8 GB (alone, from a staged file)
    con.execute("SET partitioned_write_flush_threshold = 32768")
    with store.writer(run_id) as txn:
        con.execute(f"SET temp_directory = {literal(str(txn.staging / 'spill'))}")
        stage = _Stage(con, txn.staging / "checked", event_id_sql(mapping.dedupe))
        if piped is not None:
            files.append(_spool(piped, txn.staging / "stdin", progress))
        inputs, broken = unpack_archives(files, txn.staging / "unzipped")
        report.files = [i.source for i in inputs]
        for source, problem in broken:
            _account(source, BatchStream(iter([problem])), stage, report)
        if on_files is not None:
            on_files([i.path for i in inputs])
        _ingest_files(inputs, mapping, settings, params, stage, report, progress)
        _commit(con, store, txn, stage, report, strict=strict)
    report.seconds = (datetime.now(UTC) - started).total_seconds()
    return report


STDIN = "-"
PIPED = "standard input"
"""The name `progress` is told the bytes of a piped log under, while they are copied."""


def _stdin() -> BinaryIO:
    """The process's standard input, when something is piped or redirected into it."""
    if sys.stdin is None or sys.stdin.isatty():
        raise InputError(
            "expected a log piped or redirected into standard input for path '-' "
            "(`zcat events.jsonl.gz | churnwatch ingest -`). Got a terminal."
        )
    return sys.stdin.buffer


def _spool(stream: BinaryIO, folder: Path, progress: Progress | None = None) -> Input:
    """The piped log copied to a file (the readers read files), named by its bytes' hash;
    `progress` is told the bytes copied, as PIPED, of a size not known (0) until the end."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    part = folder / "piped"
    size = 0
    with part.open("wb") as out:
        while block := stream.read(1 << 20):
            digest.update(block)
            out.write(block)
            size += len(block)
            if progress is not None:
                progress(PIPED, len(block), 0)
    if not size:
        raise InputError("expected a log on standard input for path '-'. Got 0 bytes.")
    if progress is not None:
        progress(PIPED, 0, size)  # copied: its size is known now
    name = f"stdin-{digest.hexdigest()[:32]}"
    return Input(part.rename(folder / name), name, shown=f"{PIPED} ('{STDIN}')")


STORE_COLUMNS = f"{CANONICAL_COLUMNS}, event_id, event_date, source_file, source_line"
"""The columns of a store file, in order."""

# A checked row is written once, by one query per input file, to the staging folder
# <n>/kind=<events|guests|quarantine>/day=<date>/: the files of kind events and guests have the
# store's columns and become store files as they are (unless deduplication has to rewrite them).
# Rows of kind quarantine keep the store's columns too, carrying their reason, its detail and
# the raw text in these three (a quarantined row has no use for them):
_QUARANTINE_IN = {"reason": "page", "detail": "song", "raw_text": "artist"}
_CARRIES = {column: check for check, column in _QUARANTINE_IN.items()}
_STAGED_COLUMNS = ", ".join(
    f"CASE WHEN reason IS NULL THEN {c} ELSE {_CARRIES[c]} END AS {c}" if c in _CARRIES else c
    for c in (c.strip() for c in STORE_COLUMNS.split(","))
)


class _Stage:
    """The staging folder: every checked row of a run, partitioned by kind and day, written
    in a single pass per input file. Streaming to disk keeps memory flat however large the
    input; writing each row once is what makes ingest fast."""

    def __init__(self, con: duckdb.DuckDBPyConnection, folder: Path, event_id: str) -> None:
        self.con = con
        self.event_id = event_id
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.runs = 0
        self.problems: list[dict[str, Any]] = []

    def add(self, sql: str, params: dict[str, Any], group: _Group) -> None:
        """Run the check `sql` over relation `batch` (every file of `group`, one after the
        other) and stage its rows."""
        out = self.folder / f"{self.runs:05d}"
        self.runs += 1
        self.con.register("batch", group.reader())
        try:
            self.con.execute(
                f"""COPY (
                  SELECT {_STAGED_COLUMNS}, kind,
                         CASE WHEN reason IS NULL THEN event_date END AS day
                  FROM (SELECT *,
                          CASE WHEN reason IS NULL THEN {self.event_id} END AS event_id,
                          CAST(ts AS DATE) AS event_date,
                          CASE WHEN reason IS NOT NULL THEN 'quarantine'
                               WHEN user_id = '' THEN 'guests' ELSE 'events' END AS kind
                        FROM (SELECT *, $sources[(line >> {_LINE_BITS}) + 1] AS source_file,
                                line & {(1 << _LINE_BITS) - 1} AS source_line
                              FROM ({sql}))))
                TO {literal(str(out))} (FORMAT parquet, PARTITION_BY (kind, day),
                    WRITE_PARTITION_COLUMNS false, FILENAME_PATTERN 'part-{{uuid}}',
                    COMPRESSION zstd)""",
                {**params, "sources": group.sources},
            )
        except duckdb.Error:
            if group.error is not None:
                raise group.error from None
            raise
        finally:
            self.con.unregister("batch")

    def files(self, kind: str) -> list[str]:
        """The staged files of `kind` (events, guests or quarantine)."""
        return sorted(str(p) for p in self.folder.glob(f"*/kind={kind}/*/*.parquet"))

    def relation(self, kind: str) -> str:
        """SQL for the staged rows of `kind`; the caller checks there are files."""
        return event_files(self.files(kind))

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


_LINE_BITS = 40
"""The rows of a group's k-th file carry line (k << _LINE_BITS) + line in the check's query."""
_GROUP_BYTES = 64 << 20  # the decompressed bytes of small files checked by one query
_WHOLE_BYTES = 16 << 20  # a small file decompressed to more than this is streamed alone
_GROUP_FILES = 4096


@dataclass(eq=False)
class _Group:
    """Files checked by one query: a large file alone, streamed, or small files with the same
    check, read whole, one after the other. A query costs about 25 ms whatever its size, so
    2,000 files of 165 lines took 50 s one query each, against 2 s for the same lines in one
    file."""

    sql: str
    params: dict[str, Any]
    schema: pa.Schema
    files: list[tuple[str, BatchStream]] = field(default_factory=list)
    nbytes: int = 0

    @property
    def sources(self) -> list[str]:
        return [source for source, _ in self.files]

    @property
    def error(self) -> BaseException | None:
        return next((s.error for _, s in self.files if s.error is not None), None)

    def takes(self, sql: str, params: dict[str, Any], stream: BatchStream, nbytes: int) -> bool:
        """Whether a small file with this check can join the group."""
        return (sql, params, stream.schema) == (self.sql, self.params, self.schema) and (
            self.nbytes + nbytes <= _GROUP_BYTES
        )

    def reader(self) -> pa.RecordBatchReader:
        at = self.schema.get_field_index("line")

        def batches() -> Iterator[pa.RecordBatch]:
            for k, (_, stream) in enumerate(self.files):
                for batch in stream.reader():
                    if k:
                        line = pc.add(batch.column(at), pa.scalar(k << _LINE_BITS, pa.int64()))
                        batch = batch.set_column(at, "line", line)
                    yield batch

        return pa.RecordBatchReader.from_batches(self.schema, batches())


def _open_file(
    source: Input,
    mapping: ColumnMapping,
    settings: Settings,
    params: dict[str, Any],
    con: duckdb.DuckDBPyConnection,
    progress: Progress | None,
) -> tuple[BatchStream, str, dict[str, Any], int | None]:
    """A file's stream and its check (SQL and parameters; empty without a batch), and its
    decompressed size when it is small enough to be read whole (None: stream it)."""
    path = source.path
    size = path.stat().st_size
    fmt = detect_format(path, encoding=mapping.encoding)

    def tick(nbytes: int) -> None:
        if progress is not None:
            progress(source.source, nbytes, size)

    items = read_file(
        path, fmt, chunk_bytes=settings.chunk_bytes, progress=tick, encoding=mapping.encoding
    )
    if source.source != str(path):  # an archive's member, a piped log: say the name it has
        items = _renamed(items, str(path), source.source)
    whole: int | None = None
    if size <= settings.chunk_bytes:  # read now, closed now: a group holds no open file
        read: list[Item] = []
        nbytes = 0
        for item in items:
            read.append(item)
            nbytes += 0 if isinstance(item, FileProblem) else item.table.nbytes
            if nbytes > _WHOLE_BYTES:  # a small gzip file that inflates: streamed alone
                stream = BatchStream(itertools.chain(read, items))
                break
        else:
            whole = nbytes
            stream = BatchStream(iter(read))
    else:
        stream = BatchStream(prefetch(items, depth=2))
    if stream.first is None:
        return stream, "", {}, whole
    if isinstance(stream.first, LineBatch):
        first = first_json_keys(stream.first)
        keys = mapping.json_keys(first)
        folders = hive_partitions(path)
        defaults = {n: v for n, k in keys.items() if (v := folders.get(k)) is not None}
        fields, paths = json_fields_sql(
            keys, constants=mapping.constants, defaults=defaults, top_level=first
        )
        sql = validate_sql(fields, source_keys=keys, raw_text=JSON_RAW_TEXT, **_rules(mapping))
        return stream, sql, {**params, "paths": paths}, whole
    return stream, _columns_sql(con, stream.schema, mapping), params, whole


def _renamed(items: Iterator[Item], path: str, source: str) -> Iterator[Item]:
    """`items` with `path` written as `source` in the problems' details."""
    for item in items:
        if isinstance(item, FileProblem):
            item = replace(item, detail=item.detail.replace(path, source))
        yield item


def _ingest_files(
    files: list[Input],
    mapping: ColumnMapping,
    settings: Settings,
    params: dict[str, Any],
    stage: _Stage,
    report: IngestReport,
    progress: Progress | None,
) -> None:
    """Check and stage every file: small files with the same check by one query."""
    pending: list[_Group] = []  # groups of small files, one per check

    def run(g: _Group) -> None:
        try:
            stage.add(g.sql, g.params, g)
        finally:
            for source, stream in g.files:
                _account(source, stream, stage, report)

    for file in files:
        stream, sql, file_params, whole = _open_file(
            file, mapping, settings, params, stage.con, progress
        )
        if stream.first is None:  # nothing to check: its problems alone
            _account(file.source, stream, stage, report)
            continue
        if whole is None:  # a large file streams alone
            run(_Group(sql, file_params, stream.schema, [(file.source, stream)]))
            continue
        group = next((g for g in pending if g.takes(sql, file_params, stream, whole)), None)
        if group is None:
            group = _Group(sql, file_params, stream.schema)
            pending.append(group)
        group.files.append((file.source, stream))
        group.nbytes += whole
        if group.nbytes >= _GROUP_BYTES or len(group.files) >= _GROUP_FILES:
            pending.remove(group)
            run(group)
        # what small files hold in memory stays under one group's bytes
        while sum(g.nbytes for g in pending) > _GROUP_BYTES:
            run(pending.pop(max(range(len(pending)), key=lambda i: pending[i].nbytes)))
    for group in pending:
        run(group)


def _account(source: str, stream: BatchStream, stage: _Stage, report: IngestReport) -> None:
    """A checked file's lines and problems in the report."""
    report.lines_read += stream.rows
    if stream.problems:
        stage.add_problems(source, stream.problems)
        report.lines_read += sum(1 for p in stream.problems if p.line is not None)
        report.file_problems.extend(
            {"file": source, "reason": p.reason, "detail": p.detail}
            for p in stream.problems
            if p.line is None
        )


def _columns_sql(con: duckdb.DuckDBPyConnection, schema: pa.Schema, mapping: ColumnMapping) -> str:
    """The check of a tabular source (CSV, Parquet) with these columns."""
    names = [n for n in schema.names if n != "line"]
    columns = mapping.resolve(names)
    absent = {f: c for f, c in columns.items() if c not in names}
    if absent:
        raise InputError(
            f"the column mapping names column(s) {sorted(absent.values())} that the file does not "
            f"have; it has {names}"
        )
    con.register("batch_columns", schema.empty_table())
    try:
        types = {
            row[0]: row[1]
            for row in con.execute(
                "SELECT column_name, column_type FROM (DESCRIBE batch_columns)"
            ).fetchall()
        }
    finally:
        con.unregister("batch_columns")
    fields = column_fields_sql(columns, types, mapping.constants)
    semicolons = (schema.metadata or {}).get(DELIMITER_KEY) == b";"
    return validate_sql(fields, source_keys=columns, decimal_comma=semicolons, **_rules(mapping))


def _commonest_rejection(report: IngestReport) -> str:
    """The commonest quarantine reason and its first row, for an ingest that stored nothing:
    one example often says what is wrong with every row (a time in seconds, a delimiter)."""
    if not report.quarantined_by_reason or not report.quarantine_file:
        return ""
    reason, count = max(report.quarantined_by_reason.items(), key=lambda kv: kv[1])
    with open(report.quarantine_file, encoding="utf-8") as fh:
        for text in fh:
            row = json.loads(text)
            if row["reason"] == reason and row["line"] is not None:
                where = f"{Path(row['source_file']).name} line {row['line']}"
                rows = "1 row is" if count == 1 else f"{count} rows are"
                said = f". {rows} {reason}, the first ({where}): {row['detail']}"
                return said + _wrapped(row) + _RANGE_HINT.get(reason, "")
    return ""


_RANGE_HINT = {
    "ts_out_of_range": ". If those times are right (a log of the past, a simulated future), widen "
    "the range with --ts-min DATE or --ts-max-future-days N (ts_min, ts_max_future_days in a "
    "--mapping-file); if they are not, say their unit with --ts-unit or their format with "
    "--ts-format"
}


def _wrapped(row: dict[str, Any]) -> str:
    """What to do when a rejected record is an object that holds the events in a list (an
    API's `{"events": [...], "next": ...}`): read as one record, it has none of their fields."""
    try:
        record = json.loads(row.get("raw") or "")
    except ValueError:
        return ""
    if not isinstance(record, dict):
        return ""
    for key, value in record.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            name = Path(row["source_file"]).name
            return (
                f". The record is an object whose {key!r} holds {len(value):,} objects: to read "
                f"them as events, `jq -c '.[\"{key}\"][]' {name} | churnwatch ingest -`"
            )
    return ""


def _rules(mapping: ColumnMapping) -> dict[str, Any]:
    """The validation options a mapping sets: time unit and format, required fields, and
    whether a row without a user id is a guest's."""
    required = (*REQUIRED, EVENT_KEY) if mapping.key_column else REQUIRED
    guests = mapping.anonymous == "guest"
    if guests:
        required = tuple(n for n in required if n != "user_id")
    return {"ts_unit": mapping.ts_unit, "ts_format": mapping.ts_format, "required": required,
            "anonymous_guests": guests}  # fmt: skip


def _commit(
    con: duckdb.DuckDBPyConnection,
    store: EventStore,
    txn: StoreTransaction,
    stage: _Stage,
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
            + _commonest_rejection(report)
        )
        error.quarantine_file = report.quarantine_file
        raise error
    if strict and (report.quarantined or report.file_problems):
        raise InputError(
            f"--strict: expected no bad input. Got {report.quarantined} quarantined row(s) "
            f"{report.quarantined_by_reason} and {len(report.file_problems)} file problem(s); "
            f"nothing was stored. Quarantine: {report.quarantine_file}"
        )
    _describe(con, stage, report)
    new_files: dict[str, list[Path]] = {}
    for kind in ("events", "guests"):
        new_rows, repeats = _place(con, store, stage, kind, txn.staging / kind)
        if kind == "events":
            report.stored = new_rows
            report.duplicates = report.valid - new_rows
            report.repeated = repeats
        else:
            report.guests_stored = new_rows
        new_files[kind] = sorted((txn.staging / kind).rglob("*.parquet"))
    txn.commit(new_files, report.to_dict(), con=con)


def _rows(con: duckdb.DuckDBPyConnection, files: list[str]) -> int:
    """Rows in Parquet files (from their footers)."""
    if not files:
        return 0
    return int(con.execute("SELECT count(*) FROM read_parquet($f)", {"f": files}).fetchall()[0][0])


def _count(con: duckdb.DuckDBPyConnection, stage: _Stage, report: IngestReport) -> None:
    """Valid, guest and quarantined rows by reason, from the staged rows and the problems
    found while reading (a problem without a line is a file problem, counted apart)."""
    report.valid = _rows(con, stage.files("events"))
    report.guests = _rows(con, stage.files("guests"))
    reasons: dict[str, int] = {}
    if stage.files("quarantine"):
        column = _QUARANTINE_IN["reason"]
        for reason, n in con.execute(
            f"SELECT {column}, count(*) FROM {stage.relation('quarantine')} GROUP BY ALL"
        ).fetchall():
            reasons[reason] = n
    for p in stage.problems:
        if p["line"] is not None:
            reasons[p["reason"]] = reasons.get(p["reason"], 0) + 1
    report.quarantined_by_reason = dict(sorted(reasons.items()))
    report.quarantined = sum(report.quarantined_by_reason.values())


def _write_quarantine(
    con: duckdb.DuckDBPyConnection, store: EventStore, stage: _Stage, report: IngestReport
) -> str:
    """Every rejected line, with its reason, to the store's quarantine folder; the path."""
    qdir = store.root / "quarantine"
    qdir.mkdir(parents=True, exist_ok=True)
    qpath = qdir / f"{report.run_id}.jsonl"
    parts = []
    if stage.files("quarantine"):
        q = _QUARANTINE_IN
        parts.append(
            f"SELECT source_file, source_line AS line, {q['reason']} AS reason, "
            f"{q['detail']} AS detail, {q['raw_text']} AS raw FROM {stage.relation('quarantine')}"
        )
    if stage.problems:
        parts.append("SELECT source_file, line, reason, detail, raw FROM problems_tbl")
    con.execute(
        f"COPY ({' UNION ALL '.join(parts)} ORDER BY source_file, line NULLS FIRST) "
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


def _place(
    con: duckdb.DuckDBPyConnection, store: EventStore, stage: _Stage, kind: str, out_dir: Path
) -> tuple[int, int]:
    """Put the staged rows of `kind` that are not yet in the store, once each, into `out_dir`
    partitioned by date. Returns the rows placed and the rows that repeated another row of
    this input.

    A day's staged files are moved as they are when the store holds nothing for that day, no
    row of the day repeats another and there are few of them; only the other days are
    rewritten, without the rows already stored and keeping the first of repeated ones.
    """
    files = stage.files(kind)
    if not files:
        return 0, 0
    by_day = {
        day: (int(rows), int(repeats))
        for day, rows, repeats in con.execute(
            f"""SELECT event_date, sum(n), sum(n - 1) FROM (
                  SELECT event_date, count(*) AS n FROM {stage.relation(kind)}
                  GROUP BY event_date, user_id, ts, event_id)
                GROUP BY event_date"""
        ).fetchall()
    }
    existing = store.files(kind, dates=set(by_day))
    stored_days = {_day_of(f) for f in existing}
    staged = Counter(_day_of(f) for f in files)
    redo = {
        day
        for day, (_, repeats) in by_day.items()
        if repeats or day in stored_days or staged[day] > _FILES_PER_DAY
    }
    placed = 0
    if redo:
        repeats = any(by_day[day][1] for day in redo)
        placed = _rewrite(con, stage, kind, sorted(redo), existing, out_dir, once=repeats)
    for path in map(Path, files):
        day = _day_of(path)
        if day not in redo:
            target = out_dir / f"event_date={day.isoformat()}" / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    placed += sum(rows for day, (rows, _) in by_day.items() if day not in redo)
    return placed, sum(repeats for _, repeats in by_day.values())


_FILES_PER_DAY = 4
"""Most staged files of one day moved as they are; a day with more (an input of many small
files) is rewritten as one file."""


def _day_of(path: str | Path) -> date:
    """The day of a partition file, from its folder (`day=...` or `event_date=...`)."""
    return date.fromisoformat(Path(path).parent.name.split("=", 1)[1])


def _rewrite(
    con: duckdb.DuckDBPyConnection,
    stage: _Stage,
    kind: str,
    days: list[date],
    existing: list[str],
    out_dir: Path,
    *,
    once: bool,
) -> int:
    """Write the staged rows of `days` without those already stored and, with `once`, without
    repeats (the first of each, in file and line order); the rows written."""
    anti = ""
    if existing:
        con.execute(
            "CREATE OR REPLACE TEMP VIEW existing AS SELECT user_id, ts, event_id "
            f"FROM {event_files(existing)}"
        )
        anti = "ANTI JOIN existing e USING (user_id, ts, event_id)"
    first = (
        """QUALIFY row_number() OVER (PARTITION BY s.user_id, s.ts, s.event_id
                                      ORDER BY s.source_file, s.source_line) = 1"""
        if once
        else ""
    )
    out = out_dir.parent / f"{out_dir.name}-rewritten"
    con.execute(
        f"""COPY (
          SELECT s.* FROM (SELECT * FROM {stage.relation(kind)} WHERE event_date IN $days) s
          {anti} {first})
        TO {literal(str(out))} (FORMAT parquet, PARTITION_BY (event_date),
             WRITE_PARTITION_COLUMNS true, FILENAME_PATTERN 'part-{{uuid}}', COMPRESSION zstd)""",
        {"days": days},
    )
    written = sorted(out.rglob("*.parquet"))
    rows = _rows(con, [str(p) for p in written])
    for path in written:
        target = out_dir / path.relative_to(out)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
    return rows


def _describe(con: duckdb.DuckDBPyConnection, stage: _Stage, report: IngestReport) -> None:
    """Users, sessions, date range and churn events among the valid user rows read."""
    users, sessions, first, last, churn = con.execute(
        f"""SELECT count(DISTINCT user_id), count(DISTINCT (user_id, session_id)), min(ts),
                  max(ts), count(DISTINCT (user_id, ts)) FILTER (page = $churn)
           FROM {stage.relation("events")}""",
        {"churn": CHURN_PAGE},
    ).fetchall()[0]
    report.users = int(users)
    report.sessions = int(sessions)
    report.churn_events = int(churn)
    report.first_ts = first.isoformat() if first else None
    report.last_ts = last.isoformat() if last else None
