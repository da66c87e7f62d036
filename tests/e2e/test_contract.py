"""The API keeps its contract: Schemathesis, with every check, against the real server.

Responses match their schema, every status code and content type is documented, requests the
schema allows are accepted and those it forbids are refused, 405s say what is allowed, and
with a key configured, requests without it or with a wrong one get 401. Seeded and bounded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.server import running_server

KEY = "contract-key"


def test_schemathesis_finds_no_failure(trained: Any, tmp_path: Any) -> None:
    pytest.importorskip("schemathesis", reason="the dev extra is not installed")
    _, settings = trained
    data = tmp_path / "data"
    shutil.copytree(settings.data_dir, data)
    with running_server(data, CHURNWATCH_API_KEY=KEY) as url:
        cli = Path(sys.executable).parent / "schemathesis"  # the dev extra's console script
        cmd = [
            str(cli), "run", f"{url}/openapi.json",
            "--checks", "all", "--seed", "1", "--max-examples", "25",
            "--auth", f"anyone:{KEY}", "--no-color",
        ]  # fmt: skip
        run = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    report = run.stdout[-6000:] + run.stderr[-2000:]
    assert run.returncode == 0, report
    assert "No issues found" in run.stdout, report
    assert "15/15" in run.stdout  # every operation was tested
