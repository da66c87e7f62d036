"""Start the real server for the end-to-end tests: `uvicorn app:app` from the repository root."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(
    url: str, seconds: float, *, interval: float = 1.0, check: Callable[[], None] = lambda: None
) -> bool:
    """Poll `url`/ready until it answers 200 (True) or `seconds` pass (False); `check` runs
    between polls, to fail early when the server has died."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        check()
        time.sleep(interval)
    return False


@contextmanager
def running_server(data: Path, **env_extra: str) -> Iterator[str]:
    """The API on a free port with CHURNWATCH_DATA_DIR=data; yields its URL once /ready."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"CHURNWATCH_DATA_DIR": str(data), **env_extra}
    cmd = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)]
    log = (data / "server.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def alive() -> None:
        assert proc.poll() is None, (data / "server.log").read_text()

    try:
        if not wait_ready(url, 120, interval=0.3, check=alive):
            pytest.fail("server not ready in 120 s: " + (data / "server.log").read_text())
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
