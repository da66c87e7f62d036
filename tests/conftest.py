"""Shared fixtures: the eventsim dev log (skipped when absent) and small simulated logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from churnwatch.config import Settings
from churnwatch.simulate import SimConfig, simulate

ROOT = Path(__file__).resolve().parents[1]
EVENTSIM = ROOT.parent / "shared" / "data" / "eventsim" / "sparkify_like_accordion_seed101.jsonl.gz"


@pytest.fixture(scope="session")
def eventsim_log() -> Path:
    if not EVENTSIM.is_file():
        pytest.skip(f"the eventsim dev log is not at {EVENTSIM} (a fresh clone has no ../shared)")
    return EVENTSIM


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 150-user, 40-day simulated log, made once per test session."""
    out = tmp_path_factory.mktemp("sim") / "small.jsonl.gz"
    simulate(SimConfig(users=150, days=40, seed=11), out)
    return out


@pytest.fixture(scope="session")
def spark_engine() -> Any:
    """One local Spark session for the whole test run (it takes seconds to start)."""
    pytest.importorskip("pyspark", reason="the spark extra is not installed")
    import shutil

    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17: apt-get install openjdk-17-jre-headless")
    from churnwatch.features.engines import SparkEngine

    return SparkEngine("local[2]")


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", chunk_bytes=1 << 16)
