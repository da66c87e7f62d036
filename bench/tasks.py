"""One benchmark task per function; each runs in a fresh subprocess so peak RSS is its own.

`python -m bench.tasks TASK ARGS...` runs one task and prints a JSON line with its figures.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TASKS: dict[str, Callable[..., dict[str, Any]]] = {}


def task(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    TASKS[fn.__name__] = fn
    return fn


@task
def ingest_churnwatch(log: str) -> dict[str, Any]:
    """churnwatch ingest: validate, quarantine, dedupe, write the partitioned store."""
    from churnwatch.config import Settings
    from churnwatch.ingest import ingest

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        report = ingest([log], settings=Settings(store_dir=Path(tmp) / "store"))
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "events": report.lines_read}


def _duckdb_to_parquet(select: str) -> dict[str, Any]:
    """Time DuckDB writing `select` to one Parquet file, and count the rows written."""
    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        con = duckdb.connect()
        con.execute(f"COPY ({select}) TO '{tmp}/out.parquet' (FORMAT parquet)")
        n = con.execute(f"SELECT count(*) FROM '{tmp}/out.parquet'").fetchall()[0][0]
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "events": n}


@task
def ingest_duckdb_native(log: str) -> dict[str, Any]:
    """Ceiling: DuckDB's own JSON reader straight to one Parquet file, no checks at all."""
    return _duckdb_to_parquet(f"SELECT * FROM read_json('{log}', format='newline_delimited')")


def _lines_sql(log: str) -> str:
    """DuckDB reading a JSON-lines file as raw text, one VARCHAR column, nothing parsed."""
    return (
        f"read_csv('{log}', columns={{'raw': 'VARCHAR'}}, header=false, delim='\\x01', "
        "quote='', escape='', auto_detect=false)"
    )


@task
def ingest_duckdb_lines(log: str) -> dict[str, Any]:
    """A floor for any DuckDB-based ingest: the raw lines copied to Parquet, nothing parsed."""
    return _duckdb_to_parquet(f"SELECT raw FROM {_lines_sql(log)}")


@task
def ingest_duckdb_extract(log: str) -> dict[str, Any]:
    """The raw lines with every field of the first line pulled out as text (one JSON parse per
    line), to Parquet: the SQL-over-lines design without any check, line number or partition."""
    from churnwatch.ingest.readers import first_json_keys

    keys = first_json_keys(Path(log))
    paths = ", ".join(f"'$.{k}'" for k in keys)
    fields = ", ".join(f'j[{i + 1}] AS "{k}"' for i, k in enumerate(keys))
    return _duckdb_to_parquet(
        f"SELECT {fields} FROM (SELECT json_extract_string(raw, [{paths}]) AS j "
        f"FROM {_lines_sql(log)})"
    )


@task
def decompress_only(log: str) -> dict[str, Any]:
    """A floor for any ingest: the gzip decompressed (isal, the fastest inflate in the stack,
    what churnwatch's reader uses) and its newlines counted, nothing else."""
    from isal import igzip

    t = time.perf_counter()
    n = 0
    with igzip.open(log, "rb") as f:
        while block := f.read(1 << 22):
            n += block.count(b"\n")
    return {"seconds": time.perf_counter() - t, "events": n}


@task
def ingest_pyarrow_json(log: str) -> dict[str, Any]:
    """The other native JSON reader in the stack: pyarrow's (multithreaded C++, types inferred)
    reading the gzip log straight to one Parquet file, no checks at all."""
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        table = pj.read_json(log, read_options=pj.ReadOptions(block_size=1 << 24))
        pq.write_table(table, f"{tmp}/out.parquet")
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "events": table.num_rows}


@task
def ingest_pandas(log: str) -> dict[str, Any]:
    """What most Sparkify notebooks do: pandas.read_json(lines=True), then to_parquet."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        df = pd.read_json(log, lines=True)
        df["ts"] = pd.to_datetime(df["ts"], unit="ms", utc=True)
        df.to_parquet(f"{tmp}/out.parquet")
        seconds = time.perf_counter() - t
    return {"seconds": seconds, "events": len(df)}


def _cutoffs(store: str) -> list[int]:
    from datetime import UTC

    import duckdb

    from churnwatch.ingest import EventStore
    from churnwatch.labels import CutoffSchedule

    lo, hi = duckdb.sql(
        f"SELECT min(ts), max(ts) FROM read_parquet({EventStore(store).files()!r})"
    ).fetchall()[0]
    return CutoffSchedule().days(lo.astimezone(UTC), hi.astimezone(UTC)) if lo else []


@task
def snapshots_duckdb(store: str) -> dict[str, Any]:
    """churnwatch snapshots on DuckDB, from an ingested store."""
    from churnwatch.features import build_snapshots
    from churnwatch.ingest import EventStore

    t = time.perf_counter()
    table, _ = build_snapshots(EventStore(store), engine="duckdb")
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "events": _events(store), "rows": table.num_rows}


@task
def snapshots_spark(store: str) -> dict[str, Any]:
    """churnwatch snapshots on Spark local[2] (session start included), same SQL."""
    from churnwatch.features import build_snapshots
    from churnwatch.features.engines import SparkEngine
    from churnwatch.ingest import EventStore

    t = time.perf_counter()
    table, _ = build_snapshots(EventStore(store), engine=SparkEngine("local[2]"))
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "events": _events(store), "rows": table.num_rows}


@task
def snapshots_pandas(store: str) -> dict[str, Any]:
    """The same snapshot table in plain pandas (bench/pandas_features.py), from the store."""
    import pandas as pd

    from bench.pandas_features import COLUMNS, snapshots
    from churnwatch.ingest import EventStore

    t = time.perf_counter()
    frames = [pd.read_parquet(f, columns=COLUMNS) for f in EventStore(store).files()]
    events = pd.concat(frames, ignore_index=True)
    table = snapshots(events, _cutoffs(store))
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "events": len(events), "rows": len(table)}


@task
def raw_to_snapshots(log: str) -> dict[str, Any]:
    """Raw JSON lines to snapshot table: ingest into a new store, then snapshots on DuckDB."""
    from churnwatch.config import Settings
    from churnwatch.features import build_snapshots
    from churnwatch.ingest import EventStore, ingest

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        report = ingest([log], settings=Settings(store_dir=Path(tmp) / "store"))
        mid = time.perf_counter()
        table, _ = build_snapshots(EventStore(Path(tmp) / "store"), engine="duckdb")
        seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "ingest_seconds": mid - t,
        "events": report.lines_read,
        "rows": table.num_rows,
    }


def _events(store: str) -> int:
    import duckdb

    from churnwatch.ingest import EventStore

    files = EventStore(store).files()
    return int(duckdb.sql(f"SELECT count(*) FROM read_parquet({files!r})").fetchall()[0][0])


@task
def train_models(log: str) -> dict[str, Any]:
    """churnwatch train end to end on a log: ingest, snapshots, six candidates, MLflow."""
    import os

    from churnwatch.config import Settings
    from churnwatch.models.train import TrainConfig
    from churnwatch.runs import run_training

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        summary = run_training(
            settings=Settings(data_dir=Path(tmp) / "data"), config=TrainConfig(), data=[log]
        )
        seconds = time.perf_counter() - t
    return {
        "seconds": seconds,
        "events": summary.fingerprint["events"],
        "chosen": summary.result.chosen.name,
        "test_roc_auc": summary.result.chosen.test["roc_auc"].value,
    }


@task
def train_cdnow(csv: str) -> dict[str, Any]:
    """The README's "Your own log" on CDNOW: raw CSV ingest, then the inactivity training
    (90 days, horizon 90, every 30, 60 days of history) with its default candidates."""
    import os

    from churnwatch.config import Settings
    from churnwatch.ingest import ingest
    from churnwatch.labels import ChurnDefinition, CutoffSchedule
    from churnwatch.models.train import TrainConfig
    from churnwatch.runs import run_training
    from churnwatch.schema import ColumnMapping

    os.environ.pop("MLFLOW_TRACKING_URI", None)
    mapping = ColumnMapping.from_options(
        ["user_id=customer_id", "ts=date", "value=dollar_value"], ts_format="%Y%m%d",
        ts_min="1990-01-01", event_name="purchase", dedupe="line",
    )  # fmt: skip
    config = TrainConfig(
        definition=ChurnDefinition(kind="inactivity", inactivity_days=90, horizon_days=90),
        schedule=CutoffSchedule(every_days=30, min_history_days=60),
    )
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data")
        t = time.perf_counter()
        ingest([csv], settings=settings, mapping=mapping)
        summary = run_training(settings=settings, config=config)
        seconds = time.perf_counter() - t
    result = summary.result
    by = {c.name: c for c in result.candidates}
    return {
        "seconds": seconds,
        "events": summary.fingerprint["events"],
        "snapshots": int(len(result.snapshots)),
        "chosen": result.chosen.label,
        "test_roc_auc": result.chosen.test["roc_auc"].value,
        "chosen_mean_fold_roc_auc": result.chosen.mean_roc_auc,
        **{f"{n}_mean_fold_roc_auc": by[n].mean_roc_auc for n in ("bgnbd", "recency_rule")},
        **{f"{n}_test_roc_auc": by[n].test["roc_auc"].value for n in ("bgnbd", "recency_rule")},
    }


def _drift_frames(frames: str) -> tuple[Any, Any, list[str]]:
    """The reference and current snapshot windows `drift_frames` wrote, and the monitored
    features (Evidently imported before any timing)."""
    import pandas as pd

    from churnwatch.features.catalog import feature_names
    from churnwatch.monitoring.drift import _column_drift, monitored_features

    _column_drift(*[pd.DataFrame({"x": [0.0, 1.0]})] * 2, ["x"], 0.1)  # imports Evidently
    ref = pd.read_parquet(Path(frames) / "reference.parquet")
    cur = pd.read_parquet(Path(frames) / "current.parquet")
    return ref, cur, monitored_features(feature_names())


@task
def drift_churnwatch(frames: str) -> dict[str, Any]:
    """churnwatch's drift check (Evidently's tests and PSI) and its saved HTML report."""
    from churnwatch.monitoring.drift import detect_drift, save_report

    ref, cur, feats = _drift_frames(frames)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        result = detect_drift(ref, cur, feats)
        checked = time.perf_counter() - t
        html = save_report(result, Path(tmp) / "drift.html")
        seconds = time.perf_counter() - t
        size = html.stat().st_size
    return {"seconds": seconds, "check_seconds": checked, "columns": len(feats) + 1,
            "html_mb": size / 2**20}  # fmt: skip


@task
def drift_evidently_preset(frames: str) -> dict[str, Any]:
    """Baseline: Evidently's DataDriftPreset report as its documentation runs it (the tests
    included), and its saved HTML report, on the same columns."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref, cur, feats = _drift_frames(frames)
    cols = [*feats, "score"]
    definition = DataDefinition(
        numerical_columns=[c for c in cols if ref[c].dtype.kind in "fiub"],
        categorical_columns=[c for c in cols if ref[c].dtype.kind not in "fiub"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        evaluation = Report([DataDriftPreset(columns=cols)], include_tests=True).run(
            Dataset.from_pandas(cur[cols], data_definition=definition),
            Dataset.from_pandas(ref[cols], data_definition=definition),
        )
        evaluation.dict()
        checked = time.perf_counter() - t
        evaluation.save_html(str(Path(tmp) / "drift.html"))
        seconds = time.perf_counter() - t
        size = (Path(tmp) / "drift.html").stat().st_size
    return {"seconds": seconds, "check_seconds": checked, "columns": len(cols),
            "html_mb": size / 2**20}  # fmt: skip


@task
def simulate_log(users: str, days: str, out: str) -> dict[str, Any]:
    """The simulator writing a gzip JSON-lines log."""
    from churnwatch.simulate import SimConfig, simulate

    t = time.perf_counter()
    result = simulate(SimConfig(users=int(users), days=int(days), seed=1), Path(out))
    seconds = time.perf_counter() - t
    return {"seconds": seconds, "events": result.events, "bytes": Path(out).stat().st_size}


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    print(json.dumps(TASKS[name](*args)))
    shutil.rmtree(Path(tempfile.gettempdir()) / "churnwatch-bench-unused", ignore_errors=True)
