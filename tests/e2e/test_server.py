"""The real server: `uvicorn app:app` on 127.0.0.1 and a free port, with a model trained on a
simulated log; every endpoint over HTTP, and a reload while clients keep sending requests."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from churnwatch.config import Settings
from tests.e2e.server import running_server

ROOT = Path(__file__).resolve().parents[2]
KEY = "e2e-key"


@pytest.fixture(scope="module")
def server(trained: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    _, settings = trained
    data = tmp_path_factory.mktemp("e2e") / "data"
    shutil.copytree(settings.data_dir, data)
    with running_server(data, CHURNWATCH_API_KEY=KEY) as url:
        yield url, data


def test_every_endpoint(server: tuple[str, Path]) -> None:
    url, _ = server
    with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": KEY}) as c:
        assert c.get("/health").json()["status"] == "alive"
        assert c.get("/ready").json()["ready"] is True
        model = c.get("/model").json()
        assert model["aliases"] == ["champion"] and model["population"]["active_users"] > 100
        risk = c.get("/users/at-risk", params={"limit": 5}).json()
        probs = [u["probability"] for u in risk["users"]]
        assert probs == sorted(probs, reverse=True) and len(probs) == 5
        top = risk["users"][0]["user_id"]
        one = c.post("/predict", json={"user_id": top}).json()
        assert one["probability"] == pytest.approx(probs[0])
        assert one["reasons"][0]["direction"] == "raises risk"
        feats = c.post("/predict", json={"features": {"recency_days": 30.0, "level": "free"}})
        assert feats.status_code == 200
        batch = c.post("/predict/batch", json={"user_ids": [top, "nobody"]}).json()["items"]
        assert batch[0]["prediction"]["probability"] == pytest.approx(probs[0])
        assert "error" in batch[1]
        assert c.post("/predict", json={"user_id": "nobody"}).status_code == 404
        event = {"ts": 1, "userId": top, "page": "Home"}  # 1970: quarantined as out of range
        assert httpx.post(url + "/events", json={"events": [event]}).status_code == 401
        assert httpx.post(url + "/predict", json={"user_id": top}).status_code == 401
        r = c.post("/events", json={"events": [event]})  # well formed, every event rejected
        assert r.status_code == 200 and r.json()["stored"] == 0
        assert r.json()["rejected"][0]["reason"] == "ts_out_of_range"
        assert c.get("/docs").status_code == 200
        assert "/predict/batch" in c.get("/openapi.json").json()["paths"]
        metrics = c.get("/metrics").text
        assert 'route="/predict",status="404"' in metrics
        assert "churnwatch_request_seconds_bucket" in metrics


def _register_new_version(data: Path) -> str:
    """Register the champion's model again as a new version and point `champion` at it."""
    from mlflow import MlflowClient

    from churnwatch import tracking

    tracking.setup(Settings(data_dir=data))
    client = MlflowClient()
    current = client.get_model_version_by_alias(tracking.MODEL_NAME, "champion")
    churn_model = tracking.load("models:/churnwatch@champion").unwrap_python_model()
    import mlflow
    import pandas as pd

    example = pd.DataFrame([dict.fromkeys(churn_model.features, 0)])
    for f in ("gender", "level", "os_family", "browser_family", "state"):
        example[f] = "unknown"
    with mlflow.start_run(run_name="e2e-second-version"):
        reg = tracking.log_model(churn_model, example, promote_if_first=False)
    client.set_registered_model_alias(tracking.MODEL_NAME, "champion", reg.version)
    assert reg.version != current.version
    return reg.version


def test_reload_under_load_fails_no_request(server: tuple[str, Path]) -> None:
    url, data = server
    new_version = _register_new_version(data)
    stop = threading.Event()
    seen: list[tuple[int, str]] = []
    errors: list[str] = []

    def hammer() -> None:
        with httpx.Client(base_url=url, timeout=30, headers={"X-API-Key": KEY}) as c:
            while not stop.is_set():
                try:
                    r = c.post("/predict", json={"features": {"recency_days": 3.0}})
                    seen.append((r.status_code, r.json().get("model_version", "")))
                except httpx.HTTPError as exc:  # pragma: no cover - that is the failure
                    errors.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    r = httpx.post(url + "/admin/reload", headers={"X-API-Key": KEY}, timeout=120)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert r.status_code == 200 and r.json()["version"] == new_version
    assert not errors
    assert seen and all(status == 200 for status, _ in seen)
    versions = [v for _, v in seen]
    assert versions[-1] == new_version and versions[0] != new_version  # the swap happened live
    assert httpx.get(url + "/model").json()["version"] == new_version
