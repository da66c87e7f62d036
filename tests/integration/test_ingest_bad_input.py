"""A corpus of every kind of bad input named in the ingestion issue: every bad line lands in the
quarantine with the right reason, every good line in the store, and nothing is lost."""

from __future__ import annotations

import gzip
import json
import random
import zlib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from churnwatch.config import Settings
from churnwatch.errors import InputError, NoValidRowsError
from churnwatch.ingest import EventStore, ingest
from churnwatch.schema import ColumnMapping

GOOD: dict[str, Any] = {
    "ts": 1538352077000, "userId": "7", "sessionId": 11, "page": "NextSong", "auth": "Logged In",
    "method": "PUT", "status": 200, "level": "free", "itemInSession": 3,
    "location": "Tucson, AZ", "userAgent": "Mozilla/5.0", "lastName": "Lee",
    "firstName": "Ava", "registration": 1536365176000, "gender": "F", "artist": "Coldplay",
    "song": "Trouble", "length": 273.47546,
}  # fmt: skip


def good(i: int, **changes: Any) -> bytes:
    event = {**GOOD, "ts": GOOD["ts"] + i * 1000, "itemInSession": i, **changes}
    event = {k: v for k, v in event.items() if v is not ...}
    return json.dumps(event).encode()


# (line bytes, expected outcome): "ok", "guest" or a quarantine reason
CASES: list[tuple[bytes, str]] = [
    (good(1), "ok"),
    (b'{"ts": 1538352077000, "userId": "7", "page": "Home"', "invalid_json"),
    (b"", "empty_line"),
    (b"   \t", "empty_line"),
    (b"[1, 2, 3]", "not_an_object"),
    (b"null", "not_an_object"),
    (b'"just a string"', "not_an_object"),
    (good(2, ts=...), "missing_field"),
    (good(3, userId=...), "missing_field"),
    (good(4, page=...), "missing_field"),
    (good(5, page=""), "missing_field"),
    (good(6, userId=None), "missing_field"),
    (good(7, ts=None), "missing_field"),
    (good(8, ts="yesterday"), "bad_type"),
    (good(9, sessionId="abc"), "bad_type"),
    (good(10, length="long"), "bad_type"),
    (good(11, status=True), "bad_type"),
    (good(12, registration="soon"), "bad_type"),
    (good(13, itemInSession=1.5e30), "bad_type"),
    (good(14, length=-5.0), "bad_value"),
    (good(15, ts=86_400_000), "ts_out_of_range"),
    (good(16, ts=4_102_444_800_000), "ts_out_of_range"),
    (good(17, page="Thumbs \udcff"[:7]).replace(b"Thumbs ", b"Thumbs \xff\xfe"), "invalid_utf8"),
    (good(18, ts="2018-10-01T00:03:00Z"), "ok"),
    (good(19, userId=7), "ok"),
    (good(20, userId="", level="free"), "guest"),
    (good(21, gender=None, level=...), "ok"),
    (good(22, registration=...), "ok"),
    (good(23) + b"\r", "ok"),
    (good(24, extra_field={"nested": [1, 2]}), "ok"),
    (good(26, userId="8", registration=...), "ok"),
    (good(1), "ok"),  # an exact repeat of line 1: valid, but stored once
    (good(25), "ok"),  # last line, written without a trailing newline
]


def write_corpus(folder: Path) -> dict[str, dict[int, str]]:
    """Write every bad-input file; return file -> line -> expected outcome."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, dict[int, str]] = {}
    mixed = folder / "mixed.jsonl"
    mixed.write_bytes(b"\n".join(line for line, _ in CASES))
    expected[str(mixed)] = {i + 1: outcome for i, (_, outcome) in enumerate(CASES)}

    lines = [good(100 + i, userId=str(100 + i % 5)) for i in range(400)]
    full = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    truncated = folder / "truncated.jsonl.gz"
    truncated.write_bytes(full[: len(full) // 2])
    decodable = zlib.decompressobj(31).decompress(full[: len(full) // 2])
    complete = decodable.count(b"\n")
    expected[str(truncated)] = {i + 1: "ok" for i in range(complete)}
    if not decodable.endswith(b"\n"):
        expected[str(truncated)][complete + 1] = "truncated_file"

    (folder / "empty.jsonl").write_bytes(b"")
    expected[str(folder / "empty.jsonl")] = {}

    rng = random.Random(5)
    binary = bytes(rng.randrange(256) for _ in range(3000)).replace(b"\n", b"\x00")
    notjson = folder / "notjson.json"
    notjson.write_bytes(b"id,when,what\n1,2018-10-01,play\n" + binary + b"\n")
    expected[str(notjson)] = {1: "invalid_json", 2: "invalid_json", 3: "invalid_utf8"}
    return expected


@pytest.fixture()
def corpus(tmp_path: Path) -> tuple[Path, dict[str, dict[int, str]]]:
    folder = tmp_path / "corpus"
    return folder, write_corpus(folder)


def quarantine_rows(path: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def stored_rows(settings: Settings, columns: str) -> list[tuple[Any, ...]]:
    """`columns` of the stored events, in line order."""
    return (
        duckdb.connect()
        .execute(
            f"SELECT {columns} FROM read_parquet($f) ORDER BY source_line",
            {"f": EventStore(settings.store_path).files("events")},
        )
        .fetchall()
    )


def test_every_bad_line_is_quarantined_and_every_good_line_stored(
    corpus: tuple[Path, dict[str, dict[int, str]]], settings: Settings
) -> None:
    folder, expected = corpus
    report = ingest([folder], settings=settings)

    want_lines = sum(len(v) for v in expected.values())
    assert report.lines_read == want_lines
    assert report.valid + report.guests + report.quarantined == report.lines_read

    rows = quarantine_rows(report.quarantine_file or "")
    got_bad = {(r["source_file"], r["line"]): r["reason"] for r in rows if r["line"] is not None}
    want_bad = {
        (f, line): outcome
        for f, lines in expected.items()
        for line, outcome in lines.items()
        if outcome not in ("ok", "guest")
    }
    assert got_bad == want_bad
    assert all(r["detail"] and r["raw"] is not None for r in rows if r["line"] is not None)
    file_level = {(r["source_file"], r["reason"]) for r in rows if r["line"] is None}
    assert (str(folder / "empty.jsonl"), "empty_file") in file_level
    assert (str(folder / "truncated.jsonl.gz"), "truncated_file") in file_level

    con = duckdb.connect()
    store = EventStore(settings.store_path)
    stored = con.execute(
        "SELECT source_file, source_line FROM read_parquet($f)", {"f": store.files("events")}
    ).fetchall()
    want_ok = {(f, line) for f, lines in expected.items() for line, o in lines.items() if o == "ok"}
    repeat_of_first = (str(folder / "mixed.jsonl"), len(CASES) - 1)
    assert set(stored) == want_ok - {repeat_of_first}
    assert len(stored) == len(set(stored)) == report.stored == report.valid - 1
    guests = con.execute(
        "SELECT source_line FROM read_parquet($f)", {"f": store.files("guests")}
    ).fetchall()
    assert [g[0] for g in guests] == [
        line for line, o in expected[str(folder / "mixed.jsonl")].items() if o == "guest"
    ]


def test_quarantine_messages_name_the_field_and_the_value(
    corpus: tuple[Path, dict[str, dict[int, str]]], settings: Settings
) -> None:
    folder, _ = corpus
    report = ingest([folder / "mixed.jsonl"], settings=settings)
    by_line = {r["line"]: r for r in quarantine_rows(report.quarantine_file or "")}
    assert by_line[8]["detail"] == "missing required field ts (source ts)"
    assert (
        "ts: expected a timestamp" in by_line[14]["detail"] and "yesterday" in by_line[14]["detail"]
    )
    assert "sessionId: expected an integer, got abc" == by_line[15]["detail"]
    assert "\\xFF" in by_line[23]["raw"]  # invalid bytes are kept, escaped
    assert by_line[2]["raw"].startswith('{"ts": 1538352077000')


def test_values_are_normalised(
    corpus: tuple[Path, dict[str, dict[int, str]]], settings: Settings
) -> None:
    folder, _ = corpus
    ingest([folder / "mixed.jsonl"], settings=settings)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    EventStore(settings.store_path).register(con)
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "SELECT source_line, user_id, ts, level, gender, registration_imputed, registration "
            "FROM events"
        ).fetchall()
    }
    assert rows[1][0] == "7" and rows[1][1].isoformat() == "2018-10-01T00:01:18+00:00"
    assert rows[24][1].isoformat() == "2018-10-01T00:03:00+00:00"  # ISO string accepted
    assert rows[25][0] == "7"  # numeric user id read as text
    assert rows[27][2:4] == ("unknown", "unknown")  # missing level and gender
    assert rows[28][4] is True  # missing registration: imputed and flagged ...
    assert rows[28][5] == rows[1][5]  # ... from the user's other events
    assert rows[31][4] is True and rows[31][5] == rows[31][1]  # ... or the first event
    assert rows[1][4] is False


def test_strict_refuses_and_stores_nothing(
    corpus: tuple[Path, dict[str, dict[int, str]]], settings: Settings
) -> None:
    folder, _ = corpus
    with pytest.raises(InputError, match="--strict"):
        ingest([folder / "mixed.jsonl"], settings=settings, strict=True)
    assert not EventStore(settings.store_path).exists()


def test_nothing_valid_is_an_error_with_counts(
    corpus: tuple[Path, dict[str, dict[int, str]]], settings: Settings
) -> None:
    folder, _ = corpus
    with pytest.raises(NoValidRowsError, match=r"3 line\(s\) read.*3 quarantined"):
        ingest([folder / "notjson.json", folder / "empty.jsonl"], settings=settings)


def test_a_time_in_the_wrong_unit_says_which_unit_fits(settings: Settings, tmp_path: Path) -> None:
    """Epoch seconds read as milliseconds land in January 1970. Every row was quarantined as
    out of range, and the error only counted them: the detail now names the unit used and the
    unit that gives a plausible time, and the error shows the first such row."""
    log = tmp_path / "seconds.jsonl"
    log.write_bytes(
        good(1, ts=1538352077)  # seconds
        + b"\n"
        + good(2, ts=1538352077000000)  # microseconds
        + b"\n"
        + good(3, ts="1970-01-02T00:00:00Z")  # a time, not a unit mistake
        + b"\n"
        + good(4, ts=99)  # no unit makes it plausible
        + b"\n"
    )
    with pytest.raises(NoValidRowsError) as caught:
        ingest([log], settings=settings)
    message = str(caught.value)
    first = "4 rows are ts_out_of_range, the first (seconds.jsonl line 1): ts: 1538352077 read"
    assert first in message
    by_line = {r["line"]: r["detail"] for r in quarantine_rows(caught.value.quarantine_file or "")}
    assert by_line[1].startswith("ts: 1538352077 read as epoch milliseconds is 1970-01-18 19:19")
    assert by_line[1].endswith("; as epoch seconds (--ts-unit s) it would be 2018-10-01 00:01:17")
    assert by_line[2].endswith(
        "as epoch microseconds (--ts-unit us) it would be 2018-10-01 00:01:17"
    )
    assert by_line[3].startswith(
        "ts: 1970-01-02 00:00:00 is outside the plausible range 2000-01-01"
    )
    assert "--ts-unit" not in by_line[3] and "--ts-unit" not in by_line[4]
    assert "99 read as epoch milliseconds" in by_line[4]


def test_a_log_all_out_of_range_says_how_to_widen_the_range(
    settings: Settings, tmp_path: Path
) -> None:
    """An eventsim log simulated into next year is every row ts_out_of_range: the error showed
    the first row but not the options that read it."""
    log = tmp_path / "next_year.jsonl"
    log.write_bytes(b"".join(good(i, ts=4_102_444_800_000 + i) + b"\n" for i in (1, 2)))  # 2100
    with pytest.raises(NoValidRowsError) as caught:
        ingest([log], settings=settings)
    message = str(caught.value)
    assert "2 rows are ts_out_of_range" in message
    assert "widen the range with --ts-min DATE or --ts-max-future-days N" in message
    wide = ColumnMapping(ts_max_future_days=40_000)
    assert ingest([log], settings=settings, mapping=wide).stored == 2


def test_missing_path_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="expected an existing file, directory or glob"):
        ingest([tmp_path / "nope.jsonl"], settings=settings)


def test_a_json_object_in_a_text_field_is_a_bad_type(settings: Settings, tmp_path: Path) -> None:
    """An object or array where a name belongs was stored as its JSON text: an artist called
    '{"name": "x"}', a user called '{"id": 7}'. It is a bad_type now; a name that only starts
    with a bracket is still a name."""
    lines = [
        good(1, artist={"name": "x"}),
        good(2, userId={"id": 7}),
        good(3, page=["Home"]),
        good(4, artist="[Unknown]", song="{curly}"),
        good(5, extra_field={"nested": [1, 2]}),  # not a field churnwatch reads: ignored
    ]
    log = tmp_path / "nested.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    report = ingest([log], settings=settings)
    assert (report.valid, report.quarantined) == (2, 3)
    by_line = {r["line"]: r for r in quarantine_rows(report.quarantine_file or "")}
    assert {line: r["reason"] for line, r in by_line.items()} == {
        1: "bad_type",
        2: "bad_type",
        3: "bad_type",
    }
    # the value as DuckDB writes JSON back (no spaces); the raw line is kept as it came
    assert by_line[1]["detail"] == 'artist: expected a string, got {"name":"x"}'
    assert by_line[2]["detail"] == 'userId: expected a string, got {"id":7}'
    assert '"userId": {"id": 7}' in by_line[2]["raw"]
    assert by_line[3]["detail"] == 'page: expected a string, got ["Home"]'
    assert stored_rows(settings, "artist, song") == [
        ("[Unknown]", "{curly}"), ("Coldplay", "Trouble")
    ]  # fmt: skip


def test_a_byte_order_mark_does_not_spoil_the_first_line(
    settings: Settings, tmp_path: Path
) -> None:
    """Files saved on Windows start with a UTF-8 byte order mark. It made the first JSON line
    invalid_json, and the first CSV column name unknown to the mapping."""
    bom = b"\xef\xbb\xbf"
    body = b"\n".join(good(i) for i in range(1, 4)) + b"\n"
    (tmp_path / "plain.jsonl").write_bytes(bom + body)
    (tmp_path / "packed.jsonl.gz").write_bytes(gzip.compress(bom + body, mtime=0))
    csv = b"userId,ts,page,sessionId\n8,1538352077000,Home,1\n8,1538352078000,NextSong,1\n"
    (tmp_path / "table.csv").write_bytes(bom + csv)
    for name, rows in (("plain.jsonl", 3), ("packed.jsonl.gz", 3), ("table.csv", 2)):
        store = settings.store_path.parent / name
        report = ingest([tmp_path / name], settings=settings, store_dir=store)
        assert (report.lines_read, report.valid, report.quarantined) == (rows, rows, 0), name
        first = (
            duckdb.connect()
            .execute(
                "SELECT user_id FROM read_parquet($f) WHERE source_line = $line",
                {"f": EventStore(store).files("events"), "line": 2 if name == "table.csv" else 1},
            )
            .fetchone()
        )
        assert first == ("8" if name == "table.csv" else "7",), name


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le"])
def test_a_utf16_or_utf32_file_is_read_as_its_text(
    encoding: str, settings: Settings, tmp_path: Path
) -> None:
    """Excel's "Unicode text" and Windows PowerShell's `Out-File` write UTF-16 with its byte
    order mark: the CSV ended in a UnicodeDecodeError traceback, the JSON lines were all
    invalid_utf8. Lines keep their numbers; a value outside ASCII stays itself."""
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff", "utf-32-le": b"\xff\xfe\x00\x00"}
    table = "userId\tts\tpage\tartist\r\n8\t1538352077000\tHome\tBeyoncé\r\n" + "".join(
        f"8\t{1538352078000 + i}\tNextSong\tSigur Rós\r\n"
        for i in range(16_000)  # past a 1 MB read
    )
    lines = "".join(good(i, artist="Beyoncé").decode() + "\n" for i in range(1, 4))
    cases = (("t.tsv", table, 16_001), ("t.tsv.gz", table, 16_001), ("e.jsonl", lines, 3))
    for name, text, rows in cases:  # gzip's blocks end anywhere, even inside a character
        data = bom[encoding] + text.encode(encoding)
        path = tmp_path / f"{encoding}-{name}"
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        store = settings.store_path.parent / path.name
        report = ingest([path], settings=settings, store_dir=store)
        assert (report.lines_read, report.valid, report.quarantined) == (rows, rows, 0), name
        first = stored_rows(Settings(store_dir=store), "source_line, artist")[0]
        assert first == ((1 if name == "e.jsonl" else 2), "Beyoncé"), name


def test_a_header_that_is_not_utf8_says_so_and_the_other_files_are_read(
    settings: Settings, tmp_path: Path
) -> None:
    """A Windows-1252 CSV (Excel's plain "CSV" in western locales) ended in a traceback when a
    column name held an accent."""
    text = "userId,ts,page,Künde\n1,1538352077000,Home,Müller\n"
    (tmp_path / "cp1252.csv").write_bytes(text.encode("cp1252"))
    with pytest.raises(NoValidRowsError, match=r"expected a UTF-8 header line .* Got byte 0xfc"):
        ingest([tmp_path / "cp1252.csv"], settings=settings)
    (tmp_path / "good.jsonl").write_bytes(good(1) + b"\n")
    report = ingest([tmp_path / "cp1252.csv", tmp_path / "good.jsonl"], settings=settings)
    assert report.stored == 1
    problem = report.file_problems[0]
    assert (problem["file"], problem["reason"]) == (str(tmp_path / "cp1252.csv"), "unreadable_file")
    assert "--encoding cp1252" in problem["detail"]
    read = ingest(
        [tmp_path / "cp1252.csv"], settings=settings, mapping=ColumnMapping(encoding="cp1252")
    )
    assert (read.stored, read.file_problems) == (1, [])
    assert stored_rows(settings, "user_id, page")[-1] == ("1", "Home")


def test_lines_ended_by_a_carriage_return_alone_are_lines(
    settings: Settings, tmp_path: Path
) -> None:
    """Excel for Mac's "CSV (Macintosh)" ends lines with CR alone: the whole file was read as
    one header line, and its rows vanished (0 lines read, 0 quarantined). A value with an
    accent and a quoted comma stay themselves; line numbers are exact past the first block."""
    rows = [f'8,{1538352077000 + i},NextSong,"Beyoncé, live"' for i in range(30_000)]  # > 1 MB
    table = "userId,ts,page,artist\r" + "\r".join(rows) + "\r"
    json_lines = "".join(good(i).decode() + "\r" for i in range(1, 4))
    cases = (
        ("mac.csv", table, 30_000),
        ("mac.csv.gz", table, 30_000),
        ("mac.jsonl", json_lines, 3),
    )
    for name, text, count in cases:
        path = tmp_path / name
        data = text.encode()
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        store = settings.store_path.parent / name
        report = ingest([path], settings=settings, store_dir=store)
        assert (report.lines_read, report.valid, report.quarantined) == (count, count, 0), name
        last = stored_rows(Settings(store_dir=store), "source_line, artist")[-1]
        expected = (count, "Coldplay") if name == "mac.jsonl" else (count + 1, "Beyoncé, live")
        assert last == expected, name


def test_a_file_whose_suffix_names_no_format_is_known_by_its_text(
    settings: Settings, tmp_path: Path
) -> None:
    """A spreadsheet's `export.txt` was read as JSON lines: every row an invalid_json."""
    table = "userId;ts;page\n8;1538352077000;Home\n8;1538352078000;NextSong\n"
    (tmp_path / "export.txt").write_text(table)
    (tmp_path / "dump.txt.gz").write_bytes(gzip.compress(b"\xff\xfe" + table.encode("utf-16-le")))
    (tmp_path / "events.log").write_bytes(b"\n" + good(1, artist="a, b") + b"\n" + good(2) + b"\n")
    for name, rows in (("export.txt", 2), ("dump.txt.gz", 2), ("events.log", 2)):
        store = settings.store_path.parent / name
        report = ingest([tmp_path / name], settings=settings, store_dir=store)
        assert (report.valid, report.quarantined) == (rows, 1 if name == "events.log" else 0)


def test_an_integral_float_user_id_is_the_integers_id(settings: Settings, tmp_path: Path) -> None:
    """A pandas export writes an id column with gaps (guests) as floats: user 9 came as "9.0",
    another user than the "9" of the API or of another file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.jsonl").write_bytes(b"\n".join([good(1, userId=9.0), good(2, userId="12.50")]))
    (tmp_path / "b.csv").write_bytes(
        b"userId,ts,page\n9.00,1538352079000,Home\n-3.0,1538352079001,Home\n"
    )
    table = pa.table({"userId": [9.0, None], "ts": [1538352080000] * 2, "page": ["Home"] * 2})
    pq.write_table(table, tmp_path / "c.parquet")
    report = ingest([tmp_path], settings=settings)
    assert (report.valid, report.quarantined) == (5, 1)  # a null id is missing, as in JSON
    assert sorted(u for (u,) in stored_rows(settings, "user_id")) == ["-3", "12.50", "9", "9", "9"]


def test_csv_line_numbers_stay_exact_after_a_value_with_a_newline(
    settings: Settings, tmp_path: Path
) -> None:
    """A quoted CSV value may hold a newline. pyarrow numbers records, not lines, so every
    line after such a record was stored, or quarantined, one line too early."""
    table = tmp_path / "notes.csv"
    table.write_bytes(
        b"userId,ts,page,sessionId,song\n"
        b'8,1538352077000,Home,1,"two\nlines"\n'  # lines 2-3
        b"8,1538352078000,NextSong,1,plain\n"  # line 4
        b"9;1538352079000;Home;1;x\n"  # line 5: not this file's delimiter
        b"9,1538352080000,Home,2,last\n"  # line 6
    )
    report = ingest([table], settings=settings)
    assert (report.valid, report.quarantined) == (3, 1)
    (bad,) = quarantine_rows(report.quarantine_file or "")
    assert (bad["line"], bad["reason"], bad["raw"]) == (
        5,
        "bad_csv_row",
        "9;1538352079000;Home;1;x",
    )
    assert stored_rows(settings, "source_line, song") == [
        (2, "two\nlines"), (4, "plain"), (6, "last")
    ]  # fmt: skip


def test_a_csv_value_whose_newline_falls_on_a_chunk_boundary_stays_one_row(
    settings: Settings, tmp_path: Path
) -> None:
    """The reader cuts a file into chunks at its last newline. When that newline was inside a
    quoted value, the record was split in two and both halves were rejected as bad rows."""

    def row(i: int, song: bytes) -> bytes:
        return b"8,%d,NextSong,1,%s\n" % (1538352077000 + i, song)

    head = b"userId,ts,page,sessionId,song\n"
    opening = b'8,1538352000000,Home,1,"first\n'  # the value's newline ends this line...
    boundary = 1 << 20  # ...which ends the first read of a plain file
    width = len(row(0, b"%06d" % 0))
    n = (boundary - len(head) - len(opening)) // width - 1
    fill = boundary - len(head) - len(opening) - n * width  # one wider row makes up the rest
    before = [row(i, b"%06d" % i) for i in range(n)] + [row(n, b"x" * (fill - width + 6))]
    after = [row(n + 1 + i, b"after %d" % i) for i in range(1000)]
    data = head + b"".join(before) + opening + b'second"\n' + b"".join(after)
    assert data[boundary - 1 : boundary + 7] == b'\nsecond"'
    table = tmp_path / "long.csv"
    table.write_bytes(data)

    report = ingest([table], settings=settings)
    assert (report.valid, report.quarantined) == (len(before) + 1 + len(after), 0)
    stored = dict(stored_rows(settings, "source_line, song"))
    split_line = 2 + len(before)
    assert stored[split_line] == "first\nsecond"
    assert split_line + 1 not in stored
    assert stored[split_line + 2] == "after 0"
    assert max(stored) == split_line + 1 + len(after)


def test_a_csv_quote_that_never_closes_costs_one_line(settings: Settings, tmp_path: Path) -> None:
    """An opening quote without its closing one swallowed the rest of the chunk into one value
    until Python's csv module raised its field limit error, and the ingest ended in a
    traceback. Only the line with the quote is rejected now."""
    rows = [b"8,%d,NextSong,1,song %d\n" % (1538352077000 + i, i) for i in range(6000)]
    rows[10] = b'8,1538352077010,NextSong,1,"never closed\n'  # line 12
    rows[20] = b'8,1538352077020,NextSong,1,"two\nlines"\n'  # lines 22-23: pyarrow cannot count
    table = tmp_path / "open.csv"
    table.write_bytes(b"userId,ts,page,sessionId,song\n" + b"".join(rows))
    report = ingest([table], settings=settings)
    assert (report.valid, report.quarantined) == (len(rows) - 1, 1)
    (bad,) = quarantine_rows(report.quarantine_file or "")
    assert (bad["line"], bad["reason"], bad["raw"]) == (
        12,
        "bad_csv_row",
        '8,1538352077010,NextSong,1,"never closed',
    )
    assert "no closing quote" in bad["detail"]
    stored = dict(stored_rows(settings, "source_line, song"))
    assert (stored[13], stored[22], stored[24]) == ("song 11", "two\nlines", "song 21")

    # the file's last line, without a multi-line value in the file: pyarrow kept the row
    lone = tmp_path / "lone.csv"
    lone.write_bytes(b"userId,ts,page,sessionId,song\n" + b"".join(rows[:11]))
    report = ingest([lone], settings=settings)
    assert (report.valid, report.quarantined) == (10, 1)


def test_a_semicolon_or_tab_separated_export_is_read_by_its_delimiter(
    settings: Settings, tmp_path: Path
) -> None:
    """Spreadsheets in many locales save CSV with semicolons, and `.tsv` files use tabs: every
    row was a missing_field (the header was one column). A comma file whose quoted values
    hold semicolons stays a comma file."""
    semi = tmp_path / "excel.csv"
    semi.write_bytes(
        b'"userId";"ts";"page";"sessionId";"song"\r\n'
        b'8;1538352077000;NextSong;1;"Rock; Roll, and ""more"""\r\n'
        b'8;1538352078000;NextSong;1;"two\r\nlines"\r\n'
        b"9;1538352079000;Home;2;\r\n"
        b"9,1538352080000,Home,2,x\r\n"  # not this file's delimiter: one field
    )
    tabs = tmp_path / "export.tsv"
    tabs.write_bytes(b"userId\tts\tpage\tsessionId\tsong\n10\t1538352081000\tHome\t3\ta,b;c\n")
    commas = tmp_path / "commas.csv"
    commas.write_bytes(b'userId,ts,page,sessionId,"song; title"\n11,1538352082000,Home,4,"x; y"\n')
    report = ingest([semi, tabs, commas], settings=settings)
    assert (report.valid, report.quarantined) == (5, 1)
    (bad,) = quarantine_rows(report.quarantine_file or "")
    assert (bad["source_file"], bad["line"], bad["reason"]) == (str(semi), 6, "bad_csv_row")
    assert sorted(stored_rows(settings, "user_id::INT, session_id, coalesce(song, '-')")) == [
        (8, 1, 'Rock; Roll, and "more"'),
        (8, 1, "two\r\nlines"),
        (9, 2, "-"),
        (10, 3, "a,b;c"),
        (11, 4, "-"),  # "song; title" is not a column churnwatch reads
    ]


def test_a_semicolon_export_may_write_decimal_commas(settings: Settings, tmp_path: Path) -> None:
    """Where spreadsheets save CSV with semicolons, the comma is the decimal mark: an amount
    of 12,50 made every purchase a bad_type. It is 12.5 in a semicolon file, and still a
    bad_type in a comma file (there the value would be quoted, "12,50")."""
    semi = tmp_path / "eu.csv"
    semi.write_bytes(
        b"userId;ts;page;length;amount\n"
        b"7;1538352077000;NextSong;273,5;12,50\n"
        b"7;1538352078000;NextSong;200.25;3\n"
        b"7;1538352079000;NextSong;1.234,5;3\n"  # a thousands point: not read as a number
    )
    comma = tmp_path / "us.csv"
    comma.write_bytes(b'userId,ts,page,length,amount\n8,1538352080000,NextSong,"273,5",1\n')
    mapping = ColumnMapping.from_options(["value=amount"])
    report = ingest([semi, comma], settings=settings, mapping=mapping)
    assert (report.valid, report.quarantined) == (2, 2)
    bad = {(Path(r["source_file"]).name, r["line"]): r["detail"]
           for r in quarantine_rows(report.quarantine_file or "")}  # fmt: skip
    assert bad == {
        ("eu.csv", 4): "length: expected a number, got 1.234,5",
        ("us.csv", 2): "length: expected a number, got 273,5",
    }
    assert sorted(stored_rows(settings, "length, value")) == [(200.25, 3.0), (273.5, 12.5)]


def test_a_pandas_csv_of_an_eventsim_log_keeps_rows_with_empty_fields(
    settings: Settings, tmp_path: Path
) -> None:
    """`DataFrame.to_csv` writes a missing value as an empty field: every row but the songs
    (no length: 17.5 % of the eventsim dev log's events) and every guest's (no registration,
    no session) was a bad_type. An empty field is no value; an empty time a missing_field."""
    import pandas as pd

    rows = [json.loads(good(1)), json.loads(good(2, page="Home", artist=None, song=None,
            length=None)), json.loads(good(3, userId="", registration=None, sessionId=None,
            gender=None, length=None)), json.loads(good(4, ts=None))]  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "sparkify.csv", index=False)
    assert ",,," in (tmp_path / "sparkify.csv").read_text()  # the empty fields this is about
    report = ingest([tmp_path / "sparkify.csv"], settings=settings)
    assert (report.valid, report.guests, report.quarantined_by_reason) == (
        2, 1, {"missing_field": 1}
    )  # fmt: skip
    assert stored_rows(settings, "page, length, song, session_id") == [
        ("NextSong", 273.47546, "Trouble", 11), ("Home", None, None, 11)
    ]  # fmt: skip
    kept = quarantine_rows(str(report.quarantine_file))
    assert [(r["line"], r["detail"]) for r in kept] == [
        (5, "missing required field ts (source ts)")
    ]


def test_excels_sep_line_names_the_delimiter(settings: Settings, tmp_path: Path) -> None:
    """Exports meant for Excel start with `sep=;`: it was read as the header, and every row
    was a bad_csv_row. It names the delimiter (decimal commas with it), the next line is the
    header, and line numbers stay the file's."""
    (tmp_path / "excel.csv").write_bytes(
        b"sep=;\r\nuserId;ts;page;length\r\n7;1538352077000;NextSong;273,5\r\n"
        b"7;1538352078000;Home;\r\n"
    )
    (tmp_path / "tabs.csv").write_bytes(b"sep=\t\nuserId\tts\tpage\n8\t1538352079000\tHome\n")
    report = ingest([tmp_path], settings=settings)
    assert (report.valid, report.quarantined) == (3, 0)
    assert sorted(stored_rows(settings, "user_id, source_line, page, length")) == [
        ("7", 3, "NextSong", 273.5), ("7", 4, "Home", None), ("8", 3, "Home", None)
    ]  # fmt: skip


def test_the_header_of_csv_files_joined_with_cat_is_said_to_be_one(
    settings: Settings, tmp_path: Path
) -> None:
    """`cat monday.csv tuesday.csv > week.csv`: the second header was a bad_type row, 'ts:
    expected a timestamp, got ts'. It is still quarantined (nothing is dropped unsaid), as what
    it is, with what to do."""
    day = "\ufeffuserId,ts,page\r\n7,{},Home\r\n"  # as Excel saves "CSV UTF-8"
    (tmp_path / "week.csv").write_text(day.format(1538352077000) + day.format(1538352078000))
    report = ingest([tmp_path / "week.csv"], settings=settings)
    assert (report.valid, report.quarantined) == (2, 1)
    (header,) = quarantine_rows(report.quarantine_file or "")
    assert (header["line"], header["reason"]) == (3, "bad_csv_row")
    assert header["detail"].startswith("the header line again, not an event (CSV files joined")
    mapped = tmp_path / "mapped"  # the user id and time under other names: the same
    mapped.mkdir()
    other = "account;occurred_at;action\n7;{};Home\n"
    (mapped / "w.csv").write_text(other.format("2018-10-01T00:00:00Z") + other.format("x"))
    cols = ColumnMapping.from_options(["user_id=account", "ts=occurred_at", "page=action"])
    report = ingest([mapped], settings=settings, mapping=cols)
    assert report.quarantined_by_reason == {"bad_csv_row": 1, "bad_type": 1}


def test_two_logs_glued_on_one_line_say_so(settings: Settings, tmp_path: Path) -> None:
    """`cat a.jsonl b.jsonl` where a.jsonl has no final newline: a's last event and b's first
    share a line, quarantined as 'not valid JSON' with nothing to say why."""
    (tmp_path / "joined.jsonl").write_bytes(good(1) + b"\n" + good(2) + good(3) + b"\n{oops\n")
    report = ingest([tmp_path / "joined.jsonl"], settings=settings)
    assert (report.valid, report.quarantined) == (1, 2)
    details = {r["line"]: r["detail"] for r in quarantine_rows(report.quarantine_file or "")}
    assert details[2].startswith("not valid JSON: objects one after the other on one line?")
    assert details[3] == "not valid JSON"


def test_a_parquet_struct_where_a_string_belongs_is_a_bad_type(
    settings: Settings, tmp_path: Path
) -> None:
    """The Parquet counterpart of an object in a JSON text field: a struct column mapped to the
    artist was stored as its Python text ("{'name': 'x'}")."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({
        "userId": ["7", "7"], "ts": [1538352077000, 1538352078000], "page": ["Home", "Home"],
        "artist": pa.array([{"name": "x"}, None], pa.struct([("name", pa.string())])),
    })  # fmt: skip
    pq.write_table(table, tmp_path / "nested.parquet")
    report = ingest([tmp_path / "nested.parquet"], settings=settings)
    assert (report.valid, report.quarantined) == (1, 1)  # a null struct is no artist: valid
    (bad,) = quarantine_rows(report.quarantine_file or "")
    assert (bad["line"], bad["reason"]) == (1, "bad_type")
    assert bad["detail"] == "artist: expected a string, got {'name': x}"
