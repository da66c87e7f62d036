"""The event store: idempotent re-ingest, appends, other formats, crash safety, the dev log."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.errors import InputError
from churnwatch.ingest import EventStore, ingest
from churnwatch.ingest.pipeline import STORE_COLUMNS
from churnwatch.schema import ColumnMapping


def stored_count(store: Path, kind: str = "events") -> int:
    files = EventStore(store).files(kind)
    if not files:
        return 0
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r})").fetchall()[0][0])


def test_reingest_adds_nothing_and_a_new_file_appends(
    small_sim: Path, settings: Settings, tmp_path: Path
) -> None:
    first = ingest([small_sim], settings=settings)
    assert first.stored == first.valid > 10_000
    again = ingest([small_sim], settings=settings)
    assert again.stored == 0 and again.guests_stored == 0
    assert again.duplicates == again.valid == first.valid
    assert stored_count(settings.store_path) == first.stored

    # a second log (other user ids, same days) appends, and the manifest records both runs
    other = tmp_path / "other.jsonl"
    lines = small_sim_lines(small_sim, 500)
    other.write_text("\n".join(json.dumps({**e, "userId": "x" + e["userId"]}) for e in lines))
    third = ingest([other], settings=settings)
    assert third.stored == third.valid > 0
    assert stored_count(settings.store_path) == first.stored + third.stored
    assert len(EventStore(settings.store_path).manifest().ingests) == 3


def small_sim_lines(path: Path, n: int) -> list[dict[str, object]]:
    import gzip

    out = []
    with gzip.open(path, "rt") as fh:
        for line in fh:
            event = json.loads(line)
            if event["userId"]:
                out.append(event)
            if len(out) == n:
                break
    return out


def test_store_files_are_partitioned_by_event_date(small_sim: Path, settings: Settings) -> None:
    ingest([small_sim], settings=settings)
    store = EventStore(settings.store_path)
    files = store.files("events")
    assert all("/events/event_date=" in f for f in files)
    mismatched = duckdb.sql(
        f"SELECT count(*) FROM read_parquet({files!r}, filename = true) "
        "WHERE strftime(event_date, '%Y-%m-%d') "
        "<> regexp_extract(filename, 'event_date=([0-9-]+)', 1)"
    ).fetchall()[0][0]
    assert mismatched == 0


def test_parquet_input_in_sparkify_and_canonical_names(
    small_sim: Path, settings: Settings, tmp_path: Path
) -> None:
    events = small_sim_lines(small_sim, 300)
    sparkify = tmp_path / "sparkify.parquet"
    pq.write_table(pa.Table.from_pylist(events), sparkify)
    report = ingest([sparkify], settings=settings)
    assert report.stored == 300 and report.quarantined == 0

    canonical = tmp_path / "canonical.parquet"
    renamed = [
        {"user_id": "c" + str(e["userId"]), "ts": e["ts"], "page": e["page"], "level": e["level"]}
        for e in events
    ]
    pq.write_table(pa.Table.from_pylist(renamed), canonical)
    report = ingest([canonical], settings=settings)
    assert report.stored == 300


SAAS_CSV = """account,occurred_at,action,plan
a-1,2024-03-01T10:00:00Z,login,pro
a-1,2024-03-01T10:05:00Z,export,pro
a-2,2024-03-02 08:00:00,login,
a-2,not a time,login,free
a-3,2024-03-03T09:00:00Z,login,free,EXTRA
a-3,2024-03-04T09:00:00Z,cancel,free
"""


def test_generic_csv_through_a_column_mapping(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "saas.csv"
    path.write_text(SAAS_CSV)
    mapping = ColumnMapping.from_options(
        ["user_id=account", "ts=occurred_at", "page=action", "level=plan"], ts_unit="iso"
    )
    report = ingest([path], settings=settings, mapping=mapping)
    assert (report.lines_read, report.stored, report.quarantined) == (6, 4, 2)
    rows = [json.loads(x) for x in Path(report.quarantine_file or "").read_text().splitlines()]
    assert {(r["line"], r["reason"]) for r in rows} == {(5, "bad_type"), (6, "bad_csv_row")}
    (bad_time,) = [r["detail"] for r in rows if r["line"] == 5]
    assert bad_time.startswith("occurred_at: expected an ISO-8601 time, got ")  # not "epoch iso"
    con = duckdb.connect()
    EventStore(settings.store_path).register(con)
    levels = dict(con.execute("SELECT source_line, level FROM events").fetchall())
    assert levels == {2: "pro", 3: "pro", 4: "unknown", 7: "free"}


def test_mapping_naming_an_absent_column_is_refused(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "saas.csv"
    path.write_text(SAAS_CSV)
    with pytest.raises(InputError, match=r"does not have; it has \['account'"):
        ingest([path], settings=settings, mapping=ColumnMapping.from_options(["user_id=customer"]))


def _ingest_subprocess(log: Path, store: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    code = (
        "import sys; from churnwatch.ingest import ingest; from churnwatch.config import Settings;"
        "ingest([sys.argv[1]], settings=Settings(store_dir=sys.argv[2], chunk_bytes=1 << 18))"
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, str(log), str(store)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def test_kill_just_before_commit_leaves_the_previous_store_whole(
    small_sim: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    base = tmp_path / "base.jsonl"
    base.write_text("\n".join(json.dumps(e) for e in small_sim_lines(small_sim, 200)))
    ingest([base], settings=Settings(store_dir=store))
    before = EventStore(store).manifest()

    proc = _ingest_subprocess(small_sim, store, {"_CHURNWATCH_CRASH_AT": "before_manifest"})
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    # files of the dead ingest were already moved into events/, but nothing lists them
    on_disk = list((store / "events").rglob("*.parquet"))
    assert len(on_disk) > len(before.files["events"])
    assert EventStore(store).manifest() == before
    assert stored_count(store) == 200

    # the next ingest sweeps the leftovers and completes
    report = ingest([small_sim], settings=Settings(store_dir=store))
    assert stored_count(store) == 200 + report.stored
    assert len(list((store / "events").rglob("*.parquet"))) == len(EventStore(store).files())


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5, 2.5])
def test_kill_at_any_moment_leaves_either_old_or_new_state(
    small_sim: Path, tmp_path: Path, delay: float
) -> None:
    store = tmp_path / "store"
    base = tmp_path / "base.jsonl"
    base.write_text("\n".join(json.dumps(e) for e in small_sim_lines(small_sim, 100)))
    ingest([base], settings=Settings(store_dir=store))
    proc = _ingest_subprocess(small_sim, store, {})
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    count = stored_count(store)
    full = ingest([small_sim], settings=Settings(store_dir=tmp_path / "reference")).stored
    assert count in (100, 100 + full - _overlap(base, small_sim))
    # the store stays usable
    ingest([small_sim], settings=Settings(store_dir=store))
    assert stored_count(store) == 100 + full - _overlap(base, small_sim)


def _overlap(base: Path, log: Path) -> int:
    return len(base.read_text().splitlines())  # base lines are the log's first lines


def test_a_second_writer_is_refused_while_one_holds_the_lock(
    small_sim: Path, settings: Settings
) -> None:
    import fcntl

    from churnwatch.errors import StoreError

    settings.store_path.mkdir(parents=True)
    with (settings.store_path / ".lock").open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        with pytest.raises(StoreError, match="being written by another process"):
            ingest([small_sim], settings=settings)


@pytest.mark.eventsim
def test_eventsim_dev_log(eventsim_log: Path, settings: Settings) -> None:
    report = ingest([eventsim_log], settings=settings)
    assert report.lines_read == 328_966
    assert report.users == 253
    assert report.churn_events == 44
    assert report.valid + report.guests + report.quarantined == report.lines_read
    assert report.quarantined == 0
    again = ingest([eventsim_log], settings=settings)
    assert again.stored == 0 and again.lines_read == 328_966


def test_cli_ingest_summary_and_exit_codes(
    small_sim: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURNWATCH_CHUNK_BYTES", str(1 << 18))
    runner = CliRunner()
    store = tmp_path / "store"
    result = runner.invoke(app, ["ingest", str(small_sim), "--store", str(store)])
    assert result.exit_code == 0, result.output
    assert "lines read" in result.output and "Cancellation Confirmation events" in result.output

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"userId": "1", "page": "Home", "ts": 1538352077000}\n{oops\n')
    result = runner.invoke(app, ["ingest", str(bad), "--store", str(store)])
    assert result.exit_code == 0  # bad rows alone do not fail a run ...
    result = runner.invoke(app, ["ingest", str(bad), "--store", str(store), "--strict"])
    assert result.exit_code == 1  # ... unless --strict
    assert "--strict: expected no bad input" in result.output

    result = runner.invoke(app, ["ingest", str(tmp_path / "missing.jsonl"), "--store", str(store)])
    assert result.exit_code == 1
    assert "expected an existing file" in result.output
    assert "Traceback" not in result.output


def test_a_simulated_logs_ground_truth_is_no_log_to_ingest(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`churnwatch simulate --out sims/sim.jsonl.gz` writes sim.truth.parquet beside the log;
    `churnwatch ingest sims/` read it as a log too, and quarantined its 1,062 rows (5 % of a
    50-user log) as missing_field. A folder or glob leaves it out and says so; named, it is
    refused with what to ingest instead."""
    from churnwatch.simulate import SimConfig, simulate

    sims = tmp_path / "sims"
    sims.mkdir()
    simulate(SimConfig(users=20, days=8, seed=3), sims / "sim.jsonl.gz")
    assert (sims / "sim.truth.parquet").exists()
    for spec in (sims, str(sims / "*")):
        report = ingest([spec], settings=settings)
        assert report.files == [str(sims / "sim.jsonl.gz")] and report.quarantined == 0
    skipped = [r.getMessage() for r in caplog.records if "ground truth" in r.getMessage()]
    assert len(skipped) == 2 and all("sim.truth.parquet" in m for m in skipped)
    with pytest.raises(InputError, match="the ground truth `churnwatch simulate` wrote beside"):
        ingest([sims / "sim.truth.parquet"], settings=settings)
    with pytest.raises(InputError, match="matched only the ground truth of simulated logs"):
        ingest([str(sims / "*.parquet")], settings=settings)


def test_paths_directories_and_globs_expand_to_files(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from churnwatch.ingest.readers import expand_paths

    (tmp_path / "a").mkdir()
    for name in (
        "a/1.jsonl",
        "a/2.json.gz",
        "a/3.csv",
        "a/notes.txt",
        "a/_skip.jsonl",
        "b.parquet",
    ):
        (tmp_path / name).write_text("x")
    found = expand_paths([tmp_path / "a"])
    assert [p.name for p in found] == ["1.jsonl", "2.json.gz", "3.csv"]
    # a file left out for its suffix is named (an export called events.log went unnoticed);
    # a hidden or _private one is not
    (skipped,) = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert "skipped 1 file(s)" in skipped and "notes.txt" in skipped and "_skip" not in skipped
    assert [p.name for p in expand_paths([str(tmp_path / "*.parquet")])] == ["b.parquet"]
    # the same file named twice is read once
    assert len(expand_paths([tmp_path / "b.parquet", str(tmp_path / "b.*")])) == 1
    with pytest.raises(InputError, match="matched no file"):
        expand_paths([str(tmp_path / "*.nope")])
    # a hidden folder named by the user is searched; only hidden entries inside it are skipped
    (tmp_path / ".cache" / "logs").mkdir(parents=True)
    (tmp_path / ".cache" / "logs" / "x.jsonl").write_text("x")
    assert [p.name for p in expand_paths([tmp_path / ".cache" / "logs"])] == ["x.jsonl"]


STORE_FILE_COLUMNS = [c.strip() for c in STORE_COLUMNS.split(",")]


def test_store_files_hold_the_store_columns_only(small_sim: Path, tmp_path: Path) -> None:
    """Checked rows are staged with their kind and day; quarantined ones carry their reason in
    store columns. None of that may reach a store file, whichever way the file got there."""
    log = tmp_path / "log.jsonl"
    lines = [json.dumps(e) for e in small_sim_lines(small_sim, 300)]
    log.write_text("\n".join([*lines[:150], "{broken", *lines[150:], lines[0]]) + "\n")
    settings = Settings(store_dir=tmp_path / "store")
    report = ingest([log], settings=settings)
    assert report.quarantined == 1 and report.repeated == 1
    store = EventStore(settings.store_path)
    files = store.files("events")
    for f in files:
        assert pq.read_schema(f).names == STORE_FILE_COLUMNS
    pages = duckdb.sql(
        f"SELECT DISTINCT page FROM read_parquet({files!r}) WHERE page = 'invalid_json'"
    ).fetchall()
    assert pages == []


def test_days_already_stored_are_rewritten_and_new_days_moved(
    small_sim: Path, tmp_path: Path
) -> None:
    """A second ingest overlapping the store on some days: its rows of those days that are
    already stored are dropped, the rest of those days and every new day are stored once."""
    events = small_sim_lines(small_sim, 12_000)
    days = sorted({e["ts"] // 86_400_000 for e in events})
    assert len(days) >= 4
    first_half = [e for e in events if e["ts"] // 86_400_000 <= days[1]]
    later = [e for e in events if e["ts"] // 86_400_000 >= days[1]]  # day 2 in both
    extra = [{**later[-1], "ts": later[-1]["ts"] + 1}]  # a new event on the last day
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("\n".join(json.dumps(e) for e in first_half))
    b.write_text("\n".join(json.dumps(e) for e in [*later, *later[-3:], *extra]))  # last day
    settings = Settings(store_dir=tmp_path / "store", chunk_bytes=1 << 16)

    ingest([a], settings=settings)
    report = ingest([b], settings=settings)
    overlap = sum(1 for e in later if e["ts"] // 86_400_000 == days[1])
    assert report.repeated == 3
    assert report.stored == len(later) - overlap + len(extra)
    files = EventStore(settings.store_path).files("events")
    total, distinct = duckdb.sql(
        f"SELECT count(*), count(DISTINCT (user_id, ts, event_id)) FROM read_parquet({files!r})"
    ).fetchall()[0]
    assert total == distinct == len(events) + len(extra)


def test_an_error_while_reading_is_raised_as_itself(
    small_sim: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader feeds one query per file; what fails inside the reader comes out as the
    reader's own error, not as the query's, and the store is left as it was."""
    from churnwatch.ingest import pipeline, readers

    def failing(path: Path, fmt: str, **kwargs: object) -> object:
        items = readers.read_file(path, fmt, **kwargs)
        yield next(items)
        raise OSError(f"{path}: device went away")

    monkeypatch.setattr(pipeline, "read_file", failing)
    settings = Settings(store_dir=tmp_path / "store", chunk_bytes=1 << 16)
    with pytest.raises(OSError, match="device went away"):
        ingest([small_sim], settings=settings)
    assert not EventStore(settings.store_path).exists()


def test_many_small_files_of_one_day_are_stored_as_one_file(
    small_sim: Path, tmp_path: Path
) -> None:
    """Each input file is checked by its own query; a day staged as many small files is
    rewritten as one file rather than kept as a scatter of them."""
    events = small_sim_lines(small_sim, 3000)
    first_day = events[0]["ts"] // 86_400_000
    day = [e for e in events if e["ts"] // 86_400_000 == first_day][:1200]
    folder = tmp_path / "hourly"
    folder.mkdir()
    for i in range(12):
        part = day[i * 100 : (i + 1) * 100]
        (folder / f"part-{i:02d}.jsonl").write_text("\n".join(json.dumps(e) for e in part))
    settings = Settings(store_dir=tmp_path / "store")
    report = ingest([folder], settings=settings)
    assert report.stored == len(day)
    files = EventStore(settings.store_path).files("events")
    assert len(files) == 1
    assert stored_count(settings.store_path) == len(day)
