"""No leakage, proven: features at a cutoff are the same whether or not the events after it
exist; and DuckDB and Spark give the same snapshot table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnwatch.config import Settings
from churnwatch.features import build_snapshots
from churnwatch.ingest import EventStore, ingest
from churnwatch.labels import ChurnDefinition, CutoffSchedule
from tests.features.helpers import assert_same_features

FIRST_DAY = datetime(2018, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sim_store(small_sim: Path, tmp_path_factory: pytest.TempPathFactory) -> EventStore:
    root = tmp_path_factory.mktemp("leak") / "store"
    ingest([small_sim], settings=Settings(store_dir=root))
    return EventStore(root)


def truncated_copy(store: EventStore, cut: datetime, folder: Path) -> EventStore:
    """A new store holding only the events before `cut`, made through export and ingest."""
    export = folder / "before.parquet"
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        "COPY (SELECT * EXCLUDE (event_id, event_date, source_file, source_line) "
        f"FROM read_parquet({store.files()!r}) WHERE ts < $cut) TO '{export}' (FORMAT parquet)",
        {"cut": cut},
    )
    ingest([export], settings=Settings(store_dir=folder / "store"))
    return EventStore(folder / "store")


def leak_check(
    store: EventStore,
    day: int,
    folder: Path,
    engine: Any,
    *,
    dense: int = 1,
    definition: ChurnDefinition | None = None,
) -> None:
    """Snapshots at `dense` consecutive daily cutoffs ending at FIRST_DAY + day (training uses
    a cutoff every day) equal those built from a store that ends at that last cutoff."""
    cut = FIRST_DAY + timedelta(days=day)
    days = tuple((cut - timedelta(days=k)).date() for k in range(dense))
    schedule = CutoffSchedule(explicit=days)
    full, _ = build_snapshots(store, schedule=schedule, engine=engine, definition=definition)
    short, _ = build_snapshots(
        truncated_copy(store, cut, folder), schedule=schedule, engine=engine, definition=definition
    )
    assert_same_features(full, short)
    # the truncated store cannot know any label at this cutoff
    assert set(short["label"].to_pylist()) == {None}


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(day=st.integers(min_value=3, max_value=38))
def test_features_ignore_the_future_duckdb(
    sim_store: EventStore, tmp_path_factory: pytest.TempPathFactory, day: int
) -> None:
    leak_check(sim_store, day, tmp_path_factory.mktemp("trunc"), "duckdb")


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(day=st.integers(min_value=6, max_value=38), inactivity=st.sampled_from([False, True]))
def test_dense_daily_cutoffs_ignore_the_future_for_both_definitions(
    sim_store: EventStore, tmp_path_factory: pytest.TempPathFactory, day: int, inactivity: bool
) -> None:
    definition = ChurnDefinition(kind="inactivity", inactivity_days=7) if inactivity else None
    leak_check(sim_store, day, tmp_path_factory.mktemp("trunc"), "duckdb", dense=5,
               definition=definition)  # fmt: skip


@pytest.mark.spark
@settings(
    max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(day=st.integers(min_value=3, max_value=38))
def test_features_ignore_the_future_spark(
    sim_store: EventStore, tmp_path_factory: pytest.TempPathFactory, spark_engine: Any, day: int
) -> None:
    leak_check(sim_store, day, tmp_path_factory.mktemp("trunc"), spark_engine)


@pytest.mark.spark
@pytest.mark.eventsim
def test_duckdb_and_spark_give_the_same_snapshots(
    eventsim_log: Path, tmp_path: Path, spark_engine: Any
) -> None:
    ingest([eventsim_log], settings=Settings(store_dir=tmp_path / "store"))
    store = EventStore(tmp_path / "store")
    for definition in (ChurnDefinition(), ChurnDefinition(kind="inactivity", inactivity_days=10)):
        duck, rep_d = build_snapshots(store, definition=definition, engine="duckdb")
        spark, rep_s = build_snapshots(store, definition=definition, engine=spark_engine)
        assert duck.schema == spark.schema
        assert_same_features(duck, spark)
        assert duck["label"].to_pylist() == spark["label"].to_pylist()
        assert rep_d.per_cutoff == rep_s.per_cutoff
