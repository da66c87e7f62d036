"""The layers only point down: import-linter checks the contract in pyproject.toml (face,
serving, monitoring, tracked runs, tracking, models, features, labels, ingest, base)."""

from __future__ import annotations

import os
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


def test_a_command_loads_only_its_own_module() -> None:
    """`churnwatch ingest` must not pay for MLflow, FastAPI or the model libraries: the root
    command imports a command's module only when that command runs."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from churnwatch.cli import app\n"
        "r = CliRunner().invoke(app, ['ingest', '--help'])\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in ('mlflow', 'fastapi', 'lightgbm', 'churnwatch.cli.modelling',"
        " 'churnwatch.cli.data') if m in sys.modules))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "['churnwatch.cli.data']", run.stdout + run.stderr


def test_the_root_help_lists_every_command_without_importing_one() -> None:
    """`churnwatch --help` writes each command's one-line help from the root's table, so it
    imports no command module; the table says what each command's own help says."""
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from churnwatch.cli import app\n"
        "r = CliRunner().invoke(app, ['--help'], terminal_width=300)\n"
        "assert r.exit_code == 0, r.output\n"
        "print(sorted(m for m in sys.modules if m.startswith('churnwatch.cli.')"
        " and m != 'churnwatch.cli.common'))\n"
        "print(r.output)\n"
    )
    env = {**os.environ, "COLUMNS": "300"}  # rich wraps at the terminal's width
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    loaded, output = run.stdout.split("\n", 1)
    assert loaded == "[]", run.stdout + run.stderr
    from churnwatch.cli import COMMANDS, load_command

    for name, (*_, short) in COMMANDS.items():
        command = load_command(None, name)
        assert command.get_short_help_str(300) == short, name
        assert re.search(rf"{name}\s+{re.escape(short)}", output), name
