"""Files in an encoding other than UTF-8 and without a byte order mark (Excel's plain "CSV" in
western locales is Windows-1252, older Japanese systems write Shift-JIS) are read with the
encoding the user gives: on the command line, in a mapping file, or recorded for the feed."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_ingest_bad_input import good, quarantine_rows, stored_rows
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.errors import MappingError, NoValidRowsError
from churnwatch.ingest import EventStore, ingest
from churnwatch.schema import ColumnMapping
from churnwatch.serving.app import create_app

# an ASCII header, so the file is read; values that UTF-8 cannot be (é, €, the curly quote)
CP1252_ROWS = [("1", "Beyoncé"), ("1", "Sigur Rós"), ("2", "Guns N’ Roses"), ("2", "€uro")]


def cp1252_csv(path: Path) -> Path:
    lines = [
        f"{u},{1538352000000 + i * 60_000},NextSong,{a}" for i, (u, a) in enumerate(CP1252_ROWS)
    ]
    path.write_bytes(("userId,ts,page,artist\n" + "\n".join(lines) + "\n").encode("cp1252"))
    return path


def test_a_cp1252_csv_is_read_with_the_encoding_of_a_mapping_file(
    settings: Settings, tmp_path: Path
) -> None:
    """Without the encoding its rows with accents were quarantined (kept) as not UTF-8, with no
    word of how to read them; with it, every value is itself and the feed remembers it."""
    log = cp1252_csv(tmp_path / "excel.csv")
    with pytest.raises(NoValidRowsError, match=r"4 rows are invalid_utf8.*with --encoding") as e:
        ingest([log], settings=settings)
    kept = quarantine_rows(str(e.value.quarantine_file))
    assert [r["reason"] for r in kept] == ["invalid_utf8"] * 4

    (tmp_path / "feed.toml").write_text('encoding = "cp1252"\n')
    mapping = ColumnMapping.from_options(file=tmp_path / "feed.toml")
    again = ingest([log], settings=settings, mapping=mapping)
    assert (again.stored, again.quarantined) == (4, 0)
    assert stored_rows(settings, "user_id, artist") == CP1252_ROWS
    recorded = EventStore(settings.store_path).mapping()
    assert recorded is not None and recorded.encoding == "cp1252"  # `retrain --data` reads so


def test_a_multibyte_encoding_is_read_across_block_boundaries(
    settings: Settings, tmp_path: Path
) -> None:
    """Shift-JIS characters are two bytes: gzip's blocks and the reader's pieces end anywhere,
    in the middle of one too. Lines keep their numbers."""
    lines = [good(i, artist=f"アーティスト{i}").decode() for i in range(1, 30_001)]  # > 1 MB
    path = tmp_path / "sjis.jsonl.gz"
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("shift_jis"), mtime=0))
    report = ingest([path], settings=settings, mapping=ColumnMapping(encoding="shift_jis"))
    assert (report.lines_read, report.valid, report.quarantined) == (30_000, 30_000, 0)
    rows = stored_rows(settings, "source_line, artist")
    assert rows[0] == (1, "アーティスト1") and rows[-1] == (30_000, "アーティスト30000")
    assert all(artist == f"アーティスト{line}" for line, artist in rows)


def test_a_byte_order_mark_says_more_than_the_option(settings: Settings, tmp_path: Path) -> None:
    """A file's own mark names its encoding: a UTF-8 or UTF-16 file among cp1252 ones is read
    as what it is, not garbled."""

    def line(i: int, encoding: str) -> bytes:
        return (good(i, artist="Beyoncé").decode() + "\n").encode(encoding)

    (tmp_path / "utf8.jsonl").write_bytes(b"\xef\xbb\xbf" + line(1, "utf-8"))
    (tmp_path / "utf16.jsonl").write_bytes(b"\xff\xfe" + line(2, "utf-16-le"))
    cp1252_csv(tmp_path / "excel.csv")
    report = ingest([tmp_path], settings=settings, mapping=ColumnMapping(encoding="cp1252"))
    assert (report.valid, report.quarantined) == (6, 0)
    assert sorted(a for (a,) in stored_rows(settings, "artist")) == sorted(
        ["Beyoncé", "Beyoncé", *(a for _, a in CP1252_ROWS)]
    )


@pytest.mark.parametrize("name", ["hex", "klingon"])
def test_an_encoding_that_is_not_one_is_refused_before_anything_is_read(
    name: str, settings: Settings, tmp_path: Path
) -> None:
    with pytest.raises(MappingError, match=f"encoding has to name a text encoding .* Got '{name}'"):
        ColumnMapping(encoding=name)
    log = cp1252_csv(tmp_path / "excel.csv")
    result = CliRunner().invoke(
        app, ["ingest", str(log), "--encoding", name, "--store", str(settings.store_path)]
    )
    assert result.exit_code == 1
    assert f"Got '{name}' instead" in " ".join(result.output.split())
    assert not EventStore(settings.store_path).exists()


def test_the_cli_hints_at_the_encoding_when_rows_are_not_utf8(
    settings: Settings, tmp_path: Path
) -> None:
    log = cp1252_csv(tmp_path / "excel.csv")
    (tmp_path / "good.jsonl").write_bytes(good(1) + b"\n")
    args = ["ingest", str(log), str(tmp_path / "good.jsonl"), "--store", str(settings.store_path)]
    said = " ".join(CliRunner().invoke(app, args, terminal_width=200).output.split())
    assert "hint: 4 rows are not valid UTF-8" in said and "--encoding cp1252" in said
    fixed = CliRunner().invoke(app, [*args, "--encoding", "cp1252"], terminal_width=200)
    assert fixed.exit_code == 0, fixed.output
    assert "hint:" not in fixed.output
    assert sorted(stored_rows(settings, "user_id, artist"))[:4] == sorted(CP1252_ROWS)


def test_events_posted_for_a_cp1252_feed_are_read_as_the_utf8_they_are(
    settings: Settings, tmp_path: Path
) -> None:
    """The API writes the posted events as UTF-8: the feed's own encoding is not theirs."""
    mapping = ColumnMapping.from_options(["artist=band"], encoding="cp1252")
    path = tmp_path / "excel.csv"
    path.write_bytes("userId,ts,page,band\n1,1538352000000,NextSong,Beyoncé\n".encode("cp1252"))
    ingest([path], settings=settings, mapping=mapping)
    event = {"userId": "2", "ts": 1538352060000, "page": "NextSong", "band": "Zoë Keating"}
    with TestClient(create_app(settings, load=False)) as client:
        answer = client.post("/events", json={"events": [event], "columns": "feed"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 1
    assert sorted(stored_rows(settings, "artist")) == [("Beyoncé",), ("Zoë Keating",)]
    recorded = EventStore(settings.store_path).mapping()
    assert recorded is not None and recorded.encoding == "cp1252"  # the post kept the feed's


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_utf16_or_utf32_without_a_mark_is_known_by_its_zero_bytes(
    encoding: str, settings: Settings, tmp_path: Path
) -> None:
    """Written without a byte order mark (.NET's `Encoding.Unicode` streams, `iconv -t
    UTF-16LE`), every line was `invalid_json` and every CSV row a `bad_csv_row`, with no word
    of the encoding. A log starts with ASCII, so the zero bytes say which it is."""
    table = "userId,ts,page,artist\n" + "".join(
        f"8,{1538352078000 + i},NextSong,Sigur Rós\n"
        for i in range(30_000)  # past 1 MB
    )
    lines = "".join(good(i, artist="Beyoncé").decode() + "\n" for i in range(1, 4))
    for name, text, rows in (("t.csv.gz", table, 30_000), ("e.jsonl", lines, 3)):
        data = text.encode(encoding)
        path = tmp_path / f"{encoding}-{name}"
        path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
        store = settings.store_path.parent / path.name
        report = ingest([path], settings=settings, store_dir=store)
        assert (report.lines_read, report.valid, report.quarantined) == (rows, rows, 0), name
        artists = {a for (a,) in stored_rows(Settings(store_dir=store), "artist")}
        assert artists == ({"Sigur Rós"} if name == "t.csv.gz" else {"Beyoncé"}), name


def test_a_byte_order_mark_inside_a_log_is_no_part_of_its_line(
    settings: Settings, tmp_path: Path
) -> None:
    """`cat monday.jsonl tuesday.jsonl` of files a Windows tool saved with a byte order mark:
    the second file's first line starts with one, did not parse, and was an invalid_json row
    that looked, in the quarantine, like a valid line (the mark is invisible)."""
    bom = b"\xef\xbb\xbf"
    log = tmp_path / "week.jsonl"
    log.write_bytes(bom + good(1) + b"\n" + good(2) + b"\n" + bom + good(3) + b"\n" + good(4))
    report = ingest([log], settings=settings)
    assert (report.valid, report.quarantined) == (4, 0)
    assert sorted(stored_rows(settings, "source_line")) == [(1,), (2,), (3,), (4,)]
