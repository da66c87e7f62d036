"""churnwatch against an MLflow tracking server (`MLFLOW_TRACKING_URI=http://...`), the way a
team shares one registry: the champion, its recipe and its drift references travel through
the server, serving and scoring read them back, and nothing read is left on the local disk."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.e2e.server import free_port

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.recipe import ARTIFACT as RECIPE
from churnwatch.serving.batch import score_store
from churnwatch.serving.service import ChurnService


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` with its own database and artifact store, proxying the artifacts."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    log = (root / "server.log").open("w")
    proc = subprocess.Popen(
        [str(mlflow_cli), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()}")
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


def test_a_champion_on_a_tracking_server_is_served_and_scored_leaving_no_copy(
    trained: Any, server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, local = trained
    # the trained fixture's champion and what travels with it, read from its local registry
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.setup(local)
    meta = tracking.describe(local.model_ref)
    model = tracking.load(local.model_ref).unwrap_python_model()
    rows = tracking.read_parquet(meta["run_id"], "reference.parquet")
    recipe = tracking.read_recipe(meta)
    kept = tmp_path / "artifacts"
    kept.mkdir()
    for name in ("reference.parquet", "score_reference.parquet", RECIPE):
        with tracking.download(meta["run_id"], name) as path:
            (kept / name).write_bytes(path.read_bytes())
    score_store(settings=local, out=tmp_path / "local.parquet")
    # ... registered on the server, as `churnwatch train` with MLFLOW_TRACKING_URI would
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    remote = Settings(data_dir=tmp_path / "data", store_dir=local.store_path)
    assert tracking.setup(remote) == server
    import mlflow

    with mlflow.start_run(run_name="copied"):
        mlflow.log_params(meta["params"])
        for name in ("reference.parquet", "score_reference.parquet", RECIPE):
            mlflow.log_artifact(str(kept / name))
        reg = tracking.log_model(model, rows)
    assert "champion" in reg.aliases and not (tmp_path / "data" / "mlflow.db").exists()
    # serving and batch scoring read it all through the server, into copies they remove
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    info = ChurnService(remote).load()
    assert info.version == reg.version
    assert info.recipe == recipe
    report = score_store(settings=remote, out=tmp_path / "remote.parquet")
    assert report.model == f"churnwatch v{reg.version}"
    a = pd.read_parquet(tmp_path / "local.parquet").set_index("user_id").sort_index()
    b = pd.read_parquet(tmp_path / "remote.parquet").set_index("user_id").sort_index()
    assert list(a.index) == list(b.index) and len(a) > 100
    np.testing.assert_allclose(a["probability"], b["probability"], rtol=0, atol=1e-12)
    assert sorted(p.name for p in scratch.iterdir()) == []
