"""A model trained once on a simulated log, shared by the model tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnwatch.config import Settings
from churnwatch.models.run import RunSummary, run_training
from churnwatch.models.train import TrainConfig
from churnwatch.simulate import SimConfig, simulate, truth_path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, Settings]:
    root = tmp_path_factory.mktemp("train")
    log = root / "sim.jsonl.gz"
    simulate(SimConfig(users=400, days=63, seed=21), log)
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
