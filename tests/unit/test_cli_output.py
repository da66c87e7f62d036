"""What the CLI prints is the data as it is: values that look like console markup stay text."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
import typer
from rich.console import Console

from churnwatch import tracking
from churnwatch.cli import common as c
from churnwatch.errors import InputError


def _render(renderable: object, *, markup: bool = True) -> str:
    console = Console(file=io.StringIO(), width=120, markup=markup, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_table_cells_that_look_like_markup_are_printed_as_they_are() -> None:
    rows = [("rate_rule [baseline]", "0.708"), ("[/closing]", "[bold]x")]
    for markup in (True, False):  # whatever the console does with markup
        text = _render(c.table("t", rows, ("model", "value"), numbers_from=1), markup=markup)
        assert "rate_rule [baseline]" in text
        assert "[/closing]" in text and "[bold]x" in text


def test_an_error_that_looks_like_markup_is_printed_whole(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def fail() -> None:
        raise InputError("expected a user id. Got '[/user]' and [red] instead.")

    with pytest.raises(typer.Exit):
        c.run(fail)
    err = capsys.readouterr().err
    assert "'[/user]' and [red] instead." in err


def test_the_results_console_prints_text_without_styles(
    capsys: pytest.CaptureFixture[str],
) -> None:
    c.out.print("ALERT drift: feature [thumbs_down] moved")
    assert "[thumbs_down]" in capsys.readouterr().out


def test_mlflows_hint_on_pickled_models_is_dropped_but_its_other_warnings_show() -> None:
    handler = logging.StreamHandler(io.StringIO())
    logger = logging.getLogger("mlflow")
    logger.addHandler(handler)
    try:
        with tracking._quiet_mlflow():
            logger.warning("Passing a Python object as `python_model` causes it to be pickled")
            logger.warning("Validating input example against model signature")
            logger.warning("something a user should see")
        logger.warning("Validating input example, after the context")
    finally:
        logger.removeHandler(handler)
    shown = handler.stream.getvalue()
    assert "python_model" not in shown
    assert shown.splitlines() == [
        "something a user should see",
        "Validating input example, after the context",
    ]


@pytest.mark.parametrize("command", ["simulate", "train", "demo"])
@pytest.mark.parametrize("seed", ["-1", str(2**31)])
def test_a_seed_out_of_range_is_a_usage_error_not_a_traceback(command: str, seed: str) -> None:
    """`simulate --seed -1` ended in numpy's traceback; LightGBM and XGBoost take a 32-bit
    signed seed. The command stops before any work, naming the option."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    result = CliRunner().invoke(app, [command, "--seed", seed], terminal_width=200)
    assert result.exit_code == 2
    assert "Invalid value for '--seed'" in result.output


def test_listing_models_where_there_is_no_registry_says_where_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run in the wrong folder, `models list` left a new, empty registry behind."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(tmp_path / "data"))
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    text = "".join(result.output.split())  # the console wraps the long path anywhere
    assert f"noregisteredmodelyetinsqlite:///{tmp_path / 'data' / 'mlflow.db'}" in text
    assert not (tmp_path / "data").exists()


def test_a_path_the_system_refuses_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    """`simulate --out /proc/x.jsonl` (a folder that cannot hold it) ended in a
    FileNotFoundError's traceback: the system's reason and the path, exit code 1."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "x.jsonl"  # under a file: no folder can be made there
    result = CliRunner().invoke(
        app, ["simulate", "--users", "5", "--days", "2", "--out", str(out)], terminal_width=300
    )
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    said = "".join(result.output.split())  # the console wraps the path anywhere
    assert said.startswith("error:File") and f":{tmp_path / 'file'}" in said  # exists (mkdir)
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["features", "train", "snapshots"])
def test_an_unknown_catalog_is_a_usage_error(command: str) -> None:
    """`features --features nope` printed eventsim's catalog as if nothing were wrong."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    result = CliRunner().invoke(app, [command, "--features", "nope"], terminal_width=200)
    assert result.exit_code == 2
    assert "Invalid value for '--features': expected one of auto, sparkify, events." in (
        result.output
    )


def test_outputs_without_out_go_to_the_data_dir_not_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CHURNWATCH_DATA_DIR set, the store and the registry were there but `simulate`,
    `snapshots`, `evaluate`, `plan` and `demo` wrote to ./data of whatever folder they ran in."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = tmp_path / "dd"
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(data))
    monkeypatch.delenv("CHURNWATCH_STORE_DIR", raising=False)
    runner = CliRunner()
    made = runner.invoke(app, ["simulate", "--users", "8", "--days", "20"])
    assert made.exit_code == 0, made.output
    log = data / "simulated" / "sparkify_sim.jsonl.gz"
    assert log.is_file()
    assert runner.invoke(app, ["ingest", str(log)]).exit_code == 0
    built = runner.invoke(app, ["snapshots"])
    assert built.exit_code == 0, built.output
    assert (data / "snapshots.parquet").is_file()
    assert list(elsewhere.iterdir()) == []
    monkeypatch.setenv("COLUMNS", "300")  # each help on one line (rich reads it)
    defaults = {"evaluate": "evaluation", "plan": "plan.csv", "demo": "drift-demo",
                "monitor": "monitoring/<cutoff>"}  # fmt: skip
    for command, default in defaults.items():
        shown = runner.invoke(app, [command, "--help"]).output
        assert f"(default: {default} in the data dir: CHURNWATCH_DATA_DIR, else ./data)" in shown


def test_serving_on_a_port_in_use_is_an_error_before_the_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn said "address already in use" in its log after the model had loaded, and
    exited with code 3."""
    import socket

    from typer.testing import CliRunner

    from churnwatch.cli import app, serving

    loaded: list[object] = []
    monkeypatch.setattr(serving, "create_app", lambda settings: loaded.append(settings))
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(tmp_path / "data"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port)])
    assert result.exit_code == 1 and not loaded, result.output
    said = " ".join(result.output.split())
    assert f"Got 127.0.0.1:{port}: Address already in use" in said and "--port" in said


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({"CHURNWATCH_THREADS": "abc"},
         "CHURNWATCH_THREADS='abc' (Input should be a valid integer"),
        ({"CHURNWATCH_LEVEL_PRICES": "paid=9.99"},
         "CHURNWATCH_LEVEL_PRICES, which is not valid JSON"),
        ({"CHURNWATCH_ALERT_WEBHOOK_TIMEOUT": "0"},
         "CHURNWATCH_ALERT_WEBHOOK_TIMEOUT='0' (Input should be greater than 0)"),
    ],
)  # fmt: skip
def test_a_setting_that_does_not_parse_is_named_not_a_traceback(
    env: dict[str, str], said: str, tmp_path: Path
) -> None:
    """`CHURNWATCH_THREADS=abc churnwatch simulate` ended in pydantic's traceback."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    out = tmp_path / "x.jsonl"
    args = ["simulate", "--users", "2", "--days", "1", "--out", str(out)]
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    text = " ".join(result.output.split())
    assert text.startswith("error: expected CHURNWATCH_* environment variables") and said in text
    assert not out.exists()
