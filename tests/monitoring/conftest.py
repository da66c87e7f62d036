"""A copy of the trained fixture's data (store and registry) per test module."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from churnwatch.config import Settings


@pytest.fixture()
def data_copy(trained: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    _, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copytree(settings.data_dir, tmp_path / "data")
    return Settings(data_dir=tmp_path / "data")
