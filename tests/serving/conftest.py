"""A copy of the trained fixture's data (store and MLflow registry) per module, so tests that
append events or reload models do not change what other tests see."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from churnwatch.config import Settings
from churnwatch.serving.app import create_app


@pytest.fixture(scope="module")
def served_data(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    _, settings = trained
    copy = tmp_path_factory.mktemp("served") / "data"
    shutil.copytree(settings.data_dir, copy)
    return copy


@pytest.fixture(scope="module")
def client(served_data: Path) -> Iterator[TestClient]:
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    settings = Settings(data_dir=served_data, api_key="s3cret", max_body_bytes=64 << 10)
    headers = {"X-API-Key": "s3cret"}  # the key is configured: user data needs it
    with TestClient(create_app(settings), raise_server_exceptions=False, headers=headers) as c:
        yield c
    mp.undo()


@pytest.fixture()
def anon(client: TestClient) -> TestClient:
    """The same running app, asked without any key."""
    return TestClient(client.app, raise_server_exceptions=False)
