"""The pandas baseline of the snapshot benchmark (bench/pandas_features.py) computes the same
table as churnwatch's SQL: the same population, every feature and the label. So "DuckDB is N
times faster than pandas" in BENCHMARKS.md compares the same work."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from bench.pandas_features import COLUMNS, snapshots

from churnwatch.config import Settings
from churnwatch.features import build_snapshots
from churnwatch.ingest import EventStore, ingest
from churnwatch.labels import US_PER_DAY
from tests.features.helpers import assert_same_features


def _pandas_table(store: EventStore, duck: pa.Table) -> pa.Table:
    cutoffs = sorted({int(c.timestamp()) * 1_000_000 // US_PER_DAY
                      for c in duck["cutoff"].to_pylist()})  # fmt: skip
    events = pd.concat([pd.read_parquet(f, columns=COLUMNS) for f in store.files()],
                       ignore_index=True)  # fmt: skip
    frame = snapshots(events, cutoffs)
    frame = frame.assign(
        cutoff=pd.to_datetime(frame["cutoff_day"] * US_PER_DAY, unit="us", utc=True)
    )
    return pa.Table.from_pandas(frame, preserve_index=False)


@pytest.mark.parametrize("log", ["eventsim", "simulated"])
def test_the_pandas_baseline_computes_the_same_snapshots(
    log: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    path = request.getfixturevalue("eventsim_log" if log == "eventsim" else "small_sim")
    ingest([path], settings=Settings(store_dir=tmp_path / "store"))
    store = EventStore(tmp_path / "store")
    duck, _ = build_snapshots(store)
    ours = _pandas_table(store, duck)
    assert_same_features(duck, ours)
    by_key = {(r["user_id"], r["cutoff"]): r["label"] for r in ours.to_pylist()}
    labels = [by_key[(r["user_id"], r["cutoff"])] for r in duck.to_pylist()]
    assert labels == duck["label"].to_pylist()
    assert None in labels and 1 in labels  # censored rows and churners both checked
