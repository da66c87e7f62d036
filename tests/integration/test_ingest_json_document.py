"""A JSON document (an array of events, or objects spread over several lines) is read record by
record, with the same checks and quarantine as JSON lines: before, the whole file was one
`not_an_object` line, or every line of a pretty-printed file an `invalid_json`."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from test_ingest_bad_input import CASES, good, quarantine_rows

from churnwatch.config import Settings
from churnwatch.errors import NoValidRowsError
from churnwatch.ingest import EventStore, ingest, readers
from churnwatch.schema import ColumnMapping

# every case of the JSON-lines corpus that can be an element of an array: not the empty lines,
# nor the line that is not JSON at all (that one ends a document, see below)
RECORDS = [(line, outcome) for line, outcome in CASES if line.strip() and outcome != "invalid_json"]
COLUMNS = "user_id, ts, page, level, gender, session_id, item_in_session, artist, song, length"


def stored(settings: Settings, kind: str = "events") -> list[tuple[Any, ...]]:
    files = EventStore(settings.store_path).files(kind)
    if not files:
        return []
    sql = f"SELECT {COLUMNS} FROM read_parquet($f) ORDER BY ts, item_in_session"
    return duckdb.connect().execute(sql, {"f": files}).fetchall()


def outcomes(report: Any) -> dict[int, str]:
    return {r["line"]: r["reason"] for r in quarantine_rows(report.quarantine_file or "")}


@pytest.fixture()
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read files 100 bytes at a time, so that records, strings and numbers are cut by block
    boundaries everywhere."""
    monkeypatch.setattr(readers, "_READ_BYTES", 100)


def as_lines(
    tmp_path: Path, records: list[tuple[bytes, str]]
) -> tuple[Any, list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    log = tmp_path / "lines.jsonl"
    log.write_bytes(b"\n".join(line for line, _ in records) + b"\n")
    settings = Settings(data_dir=tmp_path / "lines")
    report = ingest([log], settings=settings)
    return report, stored(settings), stored(settings, "guests")


@pytest.mark.parametrize(
    "layout",
    ["pretty array", "one-line array", "objects over several lines", "array with BOM and CRLF"],
)
def test_a_json_document_is_read_like_the_same_events_as_json_lines(
    layout: str, tmp_path: Path, tiny_blocks: None
) -> None:
    records = [(line, o) for line, o in RECORDS if b"\xff" not in line]
    if layout == "objects over several lines":  # there, an array's elements are records
        records = [(line, o) for line, o in records if not line.startswith(b"[")]
    values = [json.loads(line) for line, _ in records]
    if layout == "pretty array":
        body = json.dumps(values, indent=2).encode()
    elif layout == "one-line array":
        body = json.dumps(values).encode()
    elif layout == "objects over several lines":  # as `jq .` writes a stream
        body = b"\n".join(json.dumps(v, indent=2).encode() for v in values) + b"\n"
    else:
        body = b"\xef\xbb\xbf" + json.dumps(values, indent=1).replace("\n", "\r\n").encode()
    # the invalid UTF-8 record goes in as written (json.dumps cannot write it)
    bad_utf8 = next(line for line, _ in RECORDS if b"\xff" in line)
    at = body.rindex(b"}") + 1
    body = body[:at] + (b"," if b"array" in layout.encode() else b"\n") + bad_utf8 + body[at:]
    log = tmp_path / "events.json"
    log.write_bytes(body)
    settings = Settings(data_dir=tmp_path / "doc", chunk_bytes=1 << 16)
    report = ingest([log], settings=settings)

    want = [o for _, o in records] + ["invalid_utf8"]
    assert report.lines_read == len(want)
    assert outcomes(report) == {i + 1: o for i, o in enumerate(want) if o not in ("ok", "guest")}
    rows = quarantine_rows(report.quarantine_file or "")
    bad_type = next(r for r in rows if r["detail"] == "sessionId: expected an integer, got abc")
    assert json.loads(bad_type["raw"])["sessionId"] == "abc"  # the record's own text
    lines_report, lines_events, lines_guests = as_lines(tmp_path, RECORDS)
    assert (report.stored, report.guests, report.duplicates) == (
        lines_report.stored,
        lines_report.guests,
        lines_report.duplicates,
    )
    assert stored(settings) == lines_events and stored(settings, "guests") == lines_guests


def test_records_cut_into_batches_keep_their_text_and_numbers(
    tmp_path: Path, tiny_blocks: None
) -> None:
    values: list[Any] = [json.loads(good(i, song="é" * (i % 7))) for i in range(60)]
    values += [12345678, -0.5e-3, "x", None, True, [1, {"a": 2}]]  # numbers cut by blocks too
    log = tmp_path / "many.json"
    log.write_text(json.dumps(values, indent=1, ensure_ascii=False))
    items = list(readers.read_file(log, "json", chunk_bytes=1000, progress=lambda _: None))
    assert len(items) > 5 and all(isinstance(b, readers.LineBatch) for b in items)
    table = [row for b in items for row in b.table.to_pylist()]
    assert [r["line"] for r in table] == list(range(1, len(values) + 1))
    assert [json.loads(r["raw"]) for r in table] == values


def test_a_document_broken_half_way_keeps_every_record_before_and_the_rest(
    settings: Settings, tmp_path: Path, tiny_blocks: None
) -> None:
    events = [json.loads(good(i, userId=str(i % 3 + 1))) for i in range(10)]
    text = json.dumps(events[:6], indent=2)[:-2] + ",\n  {broken\n" + json.dumps(events[6:])[1:]
    log = tmp_path / "broken.json"
    log.write_text(text)
    report = ingest([log], settings=settings)

    assert (report.lines_read, report.stored, report.quarantined) == (7, 6, 1)
    [row] = quarantine_rows(report.quarantine_file or "")
    assert (row["line"], row["reason"]) == (7, "invalid_json")
    broken_line = text[: text.index("{broken")].count("\n") + 1
    assert f"not valid JSON at line {broken_line} " in row["detail"]
    assert row["raw"] == text[text.index("{broken") :]  # nothing lost


def test_a_truncated_gzip_array_keeps_the_records_before_the_cut(
    settings: Settings, tmp_path: Path
) -> None:
    events = [json.loads(good(i, userId=str(i % 5 + 1))) for i in range(400)]
    full = gzip.compress(json.dumps(events, indent=2).encode(), mtime=0)
    log = tmp_path / "cut.json.gz"
    log.write_bytes(full[: len(full) // 2])
    report = ingest([log], settings=settings)

    rows = quarantine_rows(report.quarantine_file or "")
    cut = [r for r in rows if r["line"] is not None]
    assert [r["reason"] for r in cut] == ["truncated_file"]
    assert cut[0]["line"] == report.stored + 1 and 100 < report.stored < 400
    assert "cut off at line" in cut[0]["detail"]
    assert any(r["line"] is None and r["reason"] == "truncated_file" for r in rows)
    assert report.lines_read == report.stored + 1


def test_line_dedupe_tells_the_records_of_a_one_line_array_apart(
    settings: Settings, tmp_path: Path
) -> None:
    """`--dedupe line` keys on the line number: in a document that is the record's number, so
    that two identical purchases written on one line stay two."""
    same = {"customer_id": "c1", "date": "19970101", "dollar_value": 12.5}
    log = tmp_path / "purchases.json"
    log.write_text(json.dumps([same, same, {**same, "customer_id": "c2"}]))
    mapping = ColumnMapping.from_options(
        ["user_id=customer_id", "ts=date", "value=dollar_value"],
        ts_format="%Y%m%d",
        ts_min="1990-01-01",
        event_name="purchase",
        dedupe="line",
    )
    report = ingest([log], settings=settings, mapping=mapping)
    assert (report.lines_read, report.stored, report.duplicates) == (3, 3, 0)
    again = ingest([log], settings=settings, mapping=mapping)
    assert again.stored == 0


def test_snake_case_keys_in_an_array_are_recognised(settings: Settings, tmp_path: Path) -> None:
    event = {"user_id": "5", "ts": 1538352077000, "page": "Home", "session_id": 3}
    log = tmp_path / "canonical.json"
    log.write_text(json.dumps([event, {**event, "ts": 1538352078000}], indent=2))
    items = readers.read_file(log, "json", chunk_bytes=1 << 16, progress=lambda _: None)
    first = next(b for b in items if isinstance(b, readers.LineBatch))
    assert readers.first_json_keys(first) == list(event)
    report = ingest([log], settings=settings)
    assert (report.stored, report.quarantined) == (2, 0)


def test_an_empty_array_is_nothing_valid(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "empty.json"
    log.write_text("[ ]\n")
    with pytest.raises(NoValidRowsError, match=r"0 line\(s\) read"):
        ingest([log], settings=settings)


def test_json_lines_are_not_mistaken_for_a_document() -> None:
    assert not readers.is_json_document(good(1) + b"\n" + good(2))
    assert readers.is_json_document(b"  \n[\n")
    assert readers.is_json_document(b'{\n  "ts": 1,\n')
    assert not readers.is_json_document(b"{broken\n")
    assert not readers.is_json_document(good(1) + b" trailing words\n" + good(2))
    assert readers.is_json_document(good(1) + good(2))  # no newline at all: Firehose
    assert readers.is_json_document(good(1) + b",\n" + good(2))


@pytest.mark.parametrize("between", [b"", b",", b",\n"])
def test_objects_one_after_the_other_are_records(
    between: bytes, settings: Settings, tmp_path: Path
) -> None:
    """Kinesis Firehose delivers records to S3 one after the other, with nothing between them:
    the whole file was one `invalid_json` line. So was every line of an array written
    without its brackets (`{...},`) but the last."""
    records = [good(i) for i in range(1, 30_001)]  # more than a 1 MB block, gzip-cut anywhere
    path = tmp_path / "firehose-1-2024-01-01.gz"
    path.write_bytes(gzip.compress(between.join(records), mtime=0))
    report = ingest([path], settings=settings)
    assert (report.lines_read, report.valid, report.quarantined) == (30_000, 30_000, 0)
    sql = "SELECT source_line, item_in_session FROM read_parquet($f) ORDER BY source_line"
    rows = duckdb.connect().execute(sql, {"f": EventStore(settings.store_path).files("events")})
    assert rows.fetchall() == [(i, i) for i in range(1, 30_001)]  # each record its number


def test_events_wrapped_in_an_object_say_how_to_read_them(
    settings: Settings, tmp_path: Path
) -> None:
    """An API's export, `{"events": [...], "next": null}`, was one record with none of the
    events' fields, and the error pointed at `--anonymous guest`: it now names the list and a
    command that reads its elements as events."""
    events = [json.loads(good(i)) for i in range(1, 4)]
    path = tmp_path / "page1.json"
    path.write_text(json.dumps({"cursor": "abc", "events": events, "next": None}, indent=2))
    with pytest.raises(NoValidRowsError) as error:
        ingest([path], settings=settings)
    said = str(error.value)
    assert "1 row is missing_field, the first (page1.json line 1)" in said
    assert "--anonymous" not in said
    assert (
        "The record is an object whose 'events' holds 3 objects: to read them as events, "
        "`jq -c '.[\"events\"][]' page1.json | churnwatch ingest -`"
    ) in said
    # what that command pipes in: one event a line
    piped = "".join(json.dumps(e) + "\n" for e in events).encode()
    report = ingest(["-"], settings=settings, stdin=io.BytesIO(piped))
    assert (report.valid, report.quarantined) == (3, 0)
