"""Every feature's `limits` hold on real snapshot tables: the API refuses a payload outside
them (a negative count, a share above 1), so a limit the SQL can cross would refuse a user the
snapshots hold. Checked on the eventsim dev log, a simulated log, and a log that is not
eventsim's."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from churnwatch.config import Settings
from churnwatch.features import build_snapshots
from churnwatch.features.build import spec_for
from churnwatch.features.catalog import FeatureSpec, catalog
from churnwatch.ingest import EventStore, ingest
from churnwatch.labels import ChurnDefinition, CutoffSchedule
from tests.features.test_generic_log import CHURN, SCHEDULE, app_log_store


def assert_within_limits(table: pa.Table, spec: FeatureSpec) -> int:
    """Every non-null value of every numeric feature lies within its limits; returns how
    many features have a limit."""
    limited = 0
    for feature in catalog(spec):
        low, high = feature.limits
        if feature.kind == "category" or (low is None and high is None):
            continue
        limited += 1
        column = table[feature.name]
        if low is not None:
            least = pc.min(column).as_py()
            assert least is None or least >= low, (feature.name, least, low)
        if high is not None:
            most = pc.max(column).as_py()
            assert most is None or most <= high, (feature.name, most, high)
    return limited


def test_the_catalogs_limit_counts_rates_shares_and_indicators() -> None:
    features = catalog().index
    assert features["thumbs_down_7d"].limits == (0.0, None)  # a count
    assert features["songs_per_day_all"].limits == (0.0, None)  # a rate
    assert features["active_share_28d"].limits == (0, 1) and features["is_paid"].limits == (0, 1)
    assert features["trend_songs"].limits == (None, None)  # a log ratio falls below 0
    valued = catalog(FeatureSpec(kind="events", events=("open",), value=True)).index
    assert valued["value_per_exposure_day"].limits == (None, None)  # refunds are negative
    assert valued["events_per_exposure_day"].limits == (0.0, None)


@pytest.mark.eventsim
def test_eventsim_snapshots_stay_within_the_limits(eventsim_log: Path, tmp_path: Path) -> None:
    ingest([eventsim_log], settings=Settings(store_dir=tmp_path / "store"))
    store = EventStore(tmp_path / "store")
    for definition in (ChurnDefinition(), ChurnDefinition(kind="inactivity", inactivity_days=10)):
        table, _ = build_snapshots(store, definition=definition, engine="duckdb")
        assert table.num_rows > 1000
        assert assert_within_limits(table, FeatureSpec()) > 200


def test_simulated_and_generic_snapshots_stay_within_the_limits(
    small_sim: Path, tmp_path: Path
) -> None:
    ingest([small_sim], settings=Settings(store_dir=tmp_path / "sim"))
    daily = CutoffSchedule(every_days=1, min_history_days=7)
    table, _ = build_snapshots(EventStore(tmp_path / "sim"), engine="duckdb", schedule=daily)
    assert table.num_rows > 1000 and assert_within_limits(table, FeatureSpec()) > 200

    (tmp_path / "app").mkdir()
    store = app_log_store(tmp_path / "app")
    spec = spec_for(store, CHURN, SCHEDULE)
    assert spec.kind == "events" and spec.value
    table, _ = build_snapshots(store, definition=CHURN, schedule=SCHEDULE, engine="duckdb",
                               spec=spec)  # fmt: skip
    assert table.num_rows > 500 and assert_within_limits(table, spec) > 10
