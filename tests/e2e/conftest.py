"""The image's build starts in the background as soon as the run is known to include the
image test: it takes minutes from a cold cache (2 min 40 s measured: a Debian base from the
mirror, then every wheel), about one core's worth, while the suite leaves one of the two cores
idle on average. The image test then waits for it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import IO

import pytest

from tests.e2e.server import ROOT

IMAGE = "localhost/churnwatch:test"
_build: tuple[subprocess.Popen[bytes], IO[bytes]] | None = None


def start_build() -> None:
    """Start `make image` unless it is running or cannot run here (the test says why)."""
    global _build
    if _build is not None or any(shutil.which(t) is None for t in ("podman", "mmdebstrap")):
        return
    out = tempfile.TemporaryFile()  # noqa: SIM115  # closed by finish_build
    proc = subprocess.Popen(
        ["make", "image", f"IMAGE={IMAGE}"],
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stopped with podman, its child
    )
    _build = (proc, out)


def finish_build(timeout: float) -> tuple[int, str]:
    """Wait for the build; its exit code and the end of its output."""
    start_build()
    assert _build is not None, "podman and mmdebstrap are needed to build the image"
    proc, out = _build
    code = proc.wait(timeout=timeout)
    out.seek(0)
    return code, out.read().decode(errors="replace")[-8000:]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if any(Path(str(item.path)).name == "test_image.py" for item in items):
        start_build()


def pytest_sessionfinish() -> None:
    if _build is not None and _build[0].poll() is None:  # the image test did not run
        os.killpg(_build[0].pid, signal.SIGTERM)
        _build[0].wait(timeout=60)
