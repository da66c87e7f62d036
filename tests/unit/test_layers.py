"""The layers only point down: import-linter checks the contract in pyproject.toml (face,
serving, monitoring, tracked runs, tracking, models, features, labels, ingest, base)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT = str(Path(sys.executable).parent / "lint-imports")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LINT, *args], cwd=ROOT, capture_output=True, text=True, check=False)


def test_the_layer_contract_is_kept() -> None:
    run = _run()
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout


def test_the_contract_would_catch_an_import_that_points_up(tmp_path: Path) -> None:
    """The same layers with serving put below models: the real code breaks that contract, so
    the checker does read the imports."""
    text = (ROOT / "pyproject.toml").read_text()
    section = text[text.index("[tool.importlinter]") :]
    swapped = section.replace('"churnwatch.serving",\n', "").replace(
        '"churnwatch.models",\n', '"churnwatch.models",\n    "churnwatch.serving",\n'
    )
    assert swapped != section
    config = tmp_path / "contracts.toml"
    config.write_text(swapped)
    run = _run("--config", str(config))
    assert run.returncode != 0
    assert re.search(r"churnwatch\.serving\S* -> churnwatch\.models", run.stdout), run.stdout
