"""Shared fixtures: the eventsim dev log (skipped when absent), small simulated logs, and a
model trained once on a simulated log (used by the model and the serving tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from churnwatch.config import Settings
from churnwatch.models.train import TrainConfig
from churnwatch.runs import RunSummary, run_training
from churnwatch.simulate import SimConfig, simulate, truth_path

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


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, Settings]:
    root = tmp_path_factory.mktemp("train")
    log = root / "sim.jsonl.gz"
    # 70 days: four backtest folds, as the fixture had before the simulator cut its log where
    # the simulated period ends (63 days then labelled three)
    simulate(SimConfig(users=400, days=70, seed=21), log)
    settings = Settings(data_dir=root / "data")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    summary = run_training(settings=settings, config=TrainConfig(n_boot=100), data=[str(log)])
    mp.undo()
    return summary, settings


@pytest.fixture(scope="session")
def trained_truth(trained: tuple[RunSummary, Settings]) -> Path:
    _, settings = trained
    return truth_path(settings.data_dir.parent / "sim.jsonl.gz")
