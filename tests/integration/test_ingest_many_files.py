"""A log delivered as many small files (a stream's hourly or per-minute dumps) is checked by
few queries, each over many files. One query per file cost about 25 ms: 2,000 files of the
dev log took 250 s where the same lines in one file take 2 s. Every row keeps its own file
and line, as with one query per file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest
from test_ingest_bad_input import good, quarantine_rows
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.ingest import EventStore, ingest, pipeline


def write_parts(folder: Path, n: int) -> dict[tuple[str, int], str]:
    """`n` small files of a few events each, of several kinds; (file, line) -> what the line
    is: "ok", or the reason it is quarantined."""
    folder.mkdir(parents=True)
    want: dict[tuple[str, int], str] = {}
    for k in range(n):
        lines = [good(k * 10 + i, userId=str(k % 7 + 1), sessionId=k) for i in range(5)]
        outcomes = ["ok"] * 5
        if k % 5 == 1:
            lines[2], outcomes[2] = b'{"ts": 1538352077000, "userId":', "invalid_json"
        if k % 5 == 2:
            lines[4], outcomes[4] = good(k * 10 + 4, length=-1.0), "bad_value"
        if k % 9 == 3:  # the canonical names: another check, so another query
            lines = [
                json.dumps({"user_id": "c", "ts": 1538352077000 + 1000 * k + i, "page": "Home"})
                .encode() for i in range(3)
            ]  # fmt: skip
            outcomes = ["ok"] * 3
        path = folder / f"part-{k:04d}.json"
        if k % 11 == 4:
            path = path.with_suffix(".json.gz")
            path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
        else:
            path.write_bytes(b"\n".join(lines) + b"\n")
        want.update({(str(path), i + 1): o for i, o in enumerate(outcomes)})
    (folder / "part-9999.json").write_bytes(b"")  # an empty file between the others
    return want


@pytest.mark.parametrize(
    ("group_bytes", "whole_bytes"), [(64 << 20, 16 << 20), (3000, 16 << 20), (64 << 20, 500)]
)
def test_many_small_files_keep_every_rows_file_and_line(
    group_bytes: int,
    whole_bytes: int,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the default bounds; with a group bound so small that groups fill and are run
    while others wait (the bytes held stay under it); and with files that inflate past the
    bound of a file read whole (each then streams alone)."""
    want = write_parts(tmp_path / "parts", 60)
    queries: list[int] = []
    add = pipeline._Stage.add

    def counted(self: pipeline._Stage, sql: str, params: dict, group: pipeline._Group) -> None:
        assert len(group.files) == 1 or group.nbytes <= group_bytes
        queries.append(len(group.files))
        add(self, sql, params, group)

    monkeypatch.setattr(pipeline._Stage, "add", counted)
    monkeypatch.setattr(pipeline, "_GROUP_BYTES", group_bytes)
    monkeypatch.setattr(pipeline, "_WHOLE_BYTES", whole_bytes)
    report = ingest([tmp_path / "parts"], settings=settings)

    assert sum(queries) == 60
    if whole_bytes == 500:  # the 7 files of three short lines still fit, together
        assert sorted(queries) == [1] * 53 + [7]
    elif group_bytes > 3000:
        assert len(queries) == 2, queries  # one per check: eventsim's names, canonical names
    else:
        assert 2 < len(queries) < 60, queries
    assert report.lines_read == len(want)
    rejected = quarantine_rows(report.quarantine_file or "")
    bad = {(r["source_file"], r["line"]): r["reason"] for r in rejected if r["line"]}
    assert bad == {key: o for key, o in want.items() if o != "ok"}
    con = duckdb.connect()
    rows = con.execute(
        "SELECT source_file, source_line, user_id, epoch_ms(ts) FROM read_parquet($f)",
        {"f": EventStore(settings.store_path).files("events")},
    ).fetchall()
    assert {(f, line) for f, line, _, _ in rows} == {k for k, o in want.items() if o == "ok"}
    for f, line, user, ts in rows:  # each row is the line it says it is
        opener = gzip.open if f.endswith(".gz") else open
        with opener(f, "rt") as fh:
            event = json.loads(fh.read().split("\n")[line - 1])
        assert (event.get("userId", event.get("user_id")), event["ts"]) == (user, ts)
    assert any(p["reason"] == "empty_file" for p in report.file_problems)


def test_line_dedupe_keeps_the_same_line_of_two_small_files_apart(
    settings: Settings, tmp_path: Path
) -> None:
    """`--dedupe line`: the same purchase on line 1 of two files is two purchases."""
    from churnwatch.schema import ColumnMapping

    mapping = ColumnMapping.from_options(["user_id=customer", "ts=day"], ts_format="%Y%m%d",
                                         event_name="purchase", dedupe="line")  # fmt: skip
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("customer,day\n1,20180101\n1,20180101\n")
    report = ingest([tmp_path / "a.csv", tmp_path / "b.csv"], settings=settings, mapping=mapping)
    assert (report.stored, report.duplicates) == (4, 0)
    assert ingest([tmp_path / "b.csv"], settings=settings, mapping=mapping).stored == 0


def test_the_command_line_shows_one_bar_for_many_files(tmp_path: Path) -> None:
    write_parts(tmp_path / "parts", 30)
    result = CliRunner().invoke(
        app, ["ingest", str(tmp_path / "parts"), "--store", str(tmp_path / "store")]
    )
    assert result.exit_code == 0, result.output
    bars = [line for line in result.output.splitlines() if line.startswith("reading")]
    assert len(bars) == 1 and bars[0].startswith("reading 31 files: "), bars
