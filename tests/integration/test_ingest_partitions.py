"""A dataset written with Spark's `partitionBy` (or pyarrow's, DuckDB's) keeps the partition
column in its folder names, not in its files: `level=paid/part-0.parquet`. Every event of such
a dataset was stored with level `unknown`, silently."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
from test_ingest_bad_input import good

from churnwatch.config import Settings
from churnwatch.ingest import EventStore, ingest
from churnwatch.ingest.readers import hive_partitions
from churnwatch.schema import ColumnMapping


def events(n: int) -> list[dict[str, object]]:
    out = []
    for i in range(n):
        e = json.loads(good(i, userId=str(i % 4 + 1), level=("free", "paid")[i % 2]))
        e["page"] = ("NextSong", "Thumbs Down")[i % 3 == 0]
        out.append(e)
    return out


def stored(settings: Settings) -> list[tuple[object, ...]]:
    sql = "SELECT user_id, ts, page, level FROM read_parquet($f) ORDER BY ts"
    files = EventStore(settings.store_path).files("events")
    return duckdb.connect().execute(sql, {"f": files}).fetchall()


def reference(rows: list[dict[str, object]], tmp_path: Path) -> list[tuple[object, ...]]:
    flat = tmp_path / "flat.jsonl"
    flat.write_text("".join(json.dumps(r) + "\n" for r in rows))
    settings = Settings(data_dir=tmp_path / "flat")
    ingest([flat], settings=settings)
    return stored(settings)


def test_a_partitioned_parquet_dataset_keeps_its_partition_columns(
    settings: Settings, tmp_path: Path
) -> None:
    rows = events(40)
    folder = tmp_path / "spark_out"
    table = pa.Table.from_pylist(rows)
    ds.write_dataset(
        table, folder, format="parquet", partitioning=["level", "page"], partitioning_flavor="hive"
    )
    (folder / "_SUCCESS").write_bytes(b"")
    assert (folder / "level=paid" / "page=Thumbs%20Down").is_dir()  # the value is URL-encoded
    report = ingest([folder], settings=settings)
    assert (report.stored, report.quarantined) == (40, 0)
    got = stored(settings)
    assert got == reference(rows, tmp_path)
    assert {r[3] for r in got} == {"free", "paid"} and "Thumbs Down" in {r[2] for r in got}


def test_partitioned_json_lines_and_csv_too(settings: Settings, tmp_path: Path) -> None:
    rows = events(12)
    for level in ("free", "paid"):
        part = tmp_path / "json" / f"level={level}"
        part.mkdir(parents=True)
        mine = [{k: v for k, v in r.items() if k != "level"} for r in rows if r["level"] == level]
        (part / "part-0.json").write_text("".join(json.dumps(r) + "\n" for r in mine))
    own = dict(rows[0], ts=1538352077000 - 5000, level="paid")  # a line's own level wins
    (tmp_path / "json" / "level=free" / "part-1.json").write_text(json.dumps(own) + "\n")
    for level in ("free", "paid"):
        part = tmp_path / "csv" / f"level={level}"
        part.mkdir(parents=True)
        mine = [
            {k: v for k, v in r.items() if k != "level"} | {"ts": int(str(r["ts"])) + 1}
            for r in rows
            if r["level"] == level
        ]
        pacsv.write_csv(pa.Table.from_pylist(mine), part / "part-0.csv")
    report = ingest([tmp_path / "json", tmp_path / "csv"], settings=settings)
    assert (report.stored, report.quarantined) == (25, 0)
    level_of = {(r[0], r[1].timestamp()): r[3] for r in stored(settings)}
    for r in rows:
        for shift_ms in (0, 1):
            at = (int(str(r["ts"])) + shift_ms) / 1000
            assert level_of[(r["userId"], at)] == r["level"]
    assert level_of[(own["userId"], int(str(own["ts"])) / 1000)] == "paid"


def test_line_dedupe_tells_partitions_with_the_same_file_names_apart(
    settings: Settings, tmp_path: Path
) -> None:
    """pyarrow names the file of every partition part-0.parquet: keyed on the file's name and
    line, `--dedupe line` stored the first partition's rows and dropped every other's as
    already stored."""
    # the same customer buys on the same day in two stores: two purchases
    purchases = pa.table({"customer": ["a", "a"], "day": ["20180101", "20180101"],
                          "store": ["north", "south"]})  # fmt: skip
    ds.write_dataset(purchases, tmp_path / "sales", format="parquet", partitioning=["store"],
                     partitioning_flavor="hive")  # fmt: skip
    mapping = ColumnMapping.from_options(["user_id=customer", "ts=day"], ts_format="%Y%m%d",
                                         event_name="purchase", dedupe="line")  # fmt: skip
    report = ingest([tmp_path / "sales"], settings=settings, mapping=mapping)
    assert (report.stored, report.duplicates) == (2, 0)
    assert ingest([tmp_path / "sales"], settings=settings, mapping=mapping).stored == 0


def test_only_the_folders_right_above_a_file_are_partitions() -> None:
    path = Path("/data/a=1/export/country=Le%20Mans/level=__HIVE_DEFAULT_PARTITION__/p.parquet")
    assert hive_partitions(path) == {"country": "Le Mans", "level": None}
    assert hive_partitions(Path("/data/export/p.parquet")) == {}
