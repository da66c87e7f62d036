"""Training end to end on a simulated log: candidates compared out of time, the chosen model
logged to MLflow, registered, aliased champion, and loadable as a pyfunc."""

from __future__ import annotations

import itertools
import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from churnwatch.config import Settings
from churnwatch.models.estimators import MODELS, PATHS
from churnwatch.runs import RunSummary
from churnwatch.simulate import SimConfig, simulate


def test_every_candidate_is_backtested_out_of_time(trained: tuple[RunSummary, Settings]) -> None:
    summary, _ = trained
    result = summary.result
    # every model once, a regularisation path once per point, strongest regularisation first
    assert list(dict.fromkeys(c.name for c in result.candidates)) == list(MODELS)
    for name, (key, values) in PATHS.items():
        if name not in MODELS:  # a path of another catalog's candidates (events_logistic)
            continue
        path = [c.params[key] for c in result.candidates if c.name == name]
        assert path == sorted(values)
    horizon = timedelta(days=result.horizon_days)
    for fold in result.backtest.folds:
        assert max(fold.fit) + horizon <= fold.cutoff
    # the reported rows are exactly the folds' evaluated cutoffs, one week apart
    tested = sorted(result.test_rows()["cutoff_date"].unique())
    assert tested == [f.cutoff for f in result.backtest.folds] and len(tested) >= 3
    assert all((b - a).days % 7 == 0 for a, b in itertools.pairwise(tested))
    for cand in result.candidates:
        assert {"roc_auc", "pr_auc", "lift_top10"} <= set(cand.test)
        assert len(cand.per_fold) == len(tested)
    chosen = result.chosen
    assert chosen.label == result.choice.name
    assert {"brier", "f1", "accuracy"} <= set(chosen.test)
    assert chosen.calibration == "sigmoid"
    # the served probabilities keep the model's ranking: users the raw scores tell apart are
    # never given one probability (isotonic steps did that)
    latest = result.snapshots[result.snapshots["cutoff"] == result.snapshots["cutoff"].max()]
    raw = chosen.estimator._raw(latest)
    served = chosen.estimator.predict_proba(latest)[:, 1]
    assert len(np.unique(served)) == len(np.unique(raw)) > 100
    assert np.all(np.diff(served[np.argsort(raw)]) >= 0)
    # training is denser than evaluation, and the final model learnt from every labelled day
    labelled = result.snapshots[result.snapshots["label"].notna()]
    assert len(result.fit_cutoffs) == labelled["cutoff_date"].nunique() > 3 * len(tested)
    assert set(tested) <= set(result.fit_cutoffs)  # refitted on the backtested period too
    # on the simulator the signal is real: the chosen model ranks far better than chance
    assert chosen.test["roc_auc"].value > 0.65
    # the simulator's true hazard gives the best achievable ranking; the model gets near it
    assert summary.oracle["oracle_roc_auc"] > 0.6
    assert 0.7 < summary.oracle["model_to_oracle_roc_auc"] < 1.2
    # calibrated: no worse than predicting the base rate
    assert chosen.test["brier"].value <= result.base_rate_brier + 0.01


def test_model_is_registered_as_champion_and_loads(
    trained: tuple[RunSummary, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from churnwatch import tracking

    tracking.setup(settings)
    assert summary.model_version == "1" and summary.aliases == ("champion",)
    assert summary.tracking_uri.startswith("sqlite:///")
    model = tracking.load("models:/churnwatch@champion")
    rows = summary.result.snapshots.head(20)
    p = np.asarray(model.predict(rows))
    assert p.shape == (20,) and np.all((p >= 0) & (p <= 1))
    import mlflow

    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(summary.run_id)}
    assert {
        "metrics.json",
        "features.json",
        "roc.png",
        "calibration.png",
        "report.html",
    } <= artifacts
    versions = tracking.list_versions()
    assert versions[0]["aliases"] == ["champion"] and versions[0]["test_roc_auc"] is not None


def test_cli_models_list(
    trained: tuple[RunSummary, Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from churnwatch.cli import app

    _, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(settings.data_dir))
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    assert "champion" in result.output and "churnwatch models" in result.output


def test_the_training_summary_names_the_horizon_in_days(
    trained: tuple[RunSummary, Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    """The table of the users most at risk was headed "P(churn in the next horizon)"."""
    from churnwatch.cli.modelling import _print_training

    summary, _ = trained
    _print_training(summary)
    said = capsys.readouterr().out
    assert f"P(churn in the next {summary.result.horizon_days} days)" in said
    assert "next horizon" not in said


def test_evaluate_on_a_log_the_model_never_saw(
    trained: tuple[RunSummary, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from churnwatch.runs import evaluate_registered

    _, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    unseen = tmp_path / "unseen.jsonl.gz"
    simulate(SimConfig(users=300, days=50, seed=99), unseen)
    ev = evaluate_registered(
        "models:/churnwatch@champion", [str(unseen)], out_dir=tmp_path / "eval",
        settings=settings, n_boot=50,
    )  # fmt: skip
    assert ev.rows > 500 and 0 < ev.positives < ev.rows
    # users and churners counted once: weekly cutoffs over a 14-day horizon label most
    # churners twice, so "N churned" of the snapshots counted them twice
    said = r"([\d,]+) labelled snapshots of ([\d,]+) users, ([\d,]+) of whom churned"
    counts = re.fullmatch(said, ev.labelled)
    assert counts is not None, ev.labelled
    rows, users, churners = (int(g.replace(",", "")) for g in counts.groups())
    assert rows == ev.rows and users < rows and 0 < churners < ev.positives
    assert ev.labelled in ev.report_path.read_text()
    assert ev.in_sample == 0 and ev.learnt is not None  # new users: nothing the model learnt
    assert ev.pooled["roc_auc"]["value"] > 0.6  # same simulator, new users: the signal carries
    assert {p.name for p in ev.images} >= {"roc.png", "pr.png", "calibration.png", "gains.png",
                                           "importance.png", "shap_summary.png"}  # fmt: skip
    assert all(p.stat().st_size > 5000 for p in ev.images)
    assert "<img" in ev.report_path.read_text() and ev.metrics_path.exists()
    # a simulated log carries its truth: the report shows the oracle and the model's ratio
    assert ev.oracle["oracle_roc_auc"] > 0.6 and 0.5 < ev.oracle["model_to_oracle_roc_auc"] < 1.3
    assert "oracle (simulated log, true hazard)" in ev.report_path.read_text()
    assert [c["cutoff"] for c in ev.per_cutoff] == sorted(c["cutoff"] for c in ev.per_cutoff)
    # by days observed: every labelled row in one band, in the report and metrics.json too
    assert sum(b["rows"] for b in ev.by_history) == ev.rows
    assert sum(b["churners"] for b in ev.by_history) == ev.positives
    assert "by days observed at the cutoff" in ev.report_path.read_text()
    assert json.loads(ev.metrics_path.read_text())["by_history"] == ev.by_history
    assert ev.read["quarantined"] == 0 and not (tmp_path / "eval" / "quarantine.jsonl").exists()


def test_evaluate_keeps_the_rows_it_rejects_and_says_so(
    trained: tuple[RunSummary, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate reads its logs into a temporary store: the rows it rejected went with it, the
    command did not say any were, and a log of nothing valid named a quarantine file that was
    gone by the time the error was read. They are kept in --out, and counted."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    _, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(settings.data_dir))
    log = settings.data_dir.parent / "sim.jsonl.gz"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{broken\n{"ts": 1538352077000, "userId": "9"}\n')
    out = tmp_path / "eval"
    nothing = CliRunner().invoke(app, ["evaluate", "--data", str(bad), "--out", str(out)])
    assert nothing.exit_code == 1 and isinstance(nothing.exception, SystemExit)
    assert f"(see{out / 'quarantine.jsonl'})" in "".join(nothing.output.split())
    rejected = (out / "quarantine.jsonl").read_text().splitlines()
    assert [json.loads(r)["reason"] for r in rejected] == ["invalid_json", "missing_field"]

    result = CliRunner().invoke(
        app, ["evaluate", "--data", str(log), "--data", str(bad), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    read = json.loads((out / "metrics.json").read_text())["read"]
    assert (read["quarantined"], read["quarantined_by_reason"]) == (
        2, {"invalid_json": 1, "missing_field": 1})  # fmt: skip
    assert read["lines_read"] == read["valid"] + read["guests"] + 2
    kept = [json.loads(r) for r in (out / "quarantine.jsonl").read_text().splitlines()]
    assert [(r["source_file"], r["line"]) for r in kept] == [(str(bad), 1), (str(bad), 2)]
    text = " ".join(result.output.split())
    assert "warning: read " in text and "2 quarantined (invalid_json 1, missing_field 1)" in text
    assert f"keptin{out / 'quarantine.jsonl'}" in "".join(text.split())  # a path wraps anywhere
    assert "2 quarantined" in (out / "report.html").read_text()


def test_evaluate_reads_a_log_with_the_options_ingest_takes(
    trained: tuple[RunSummary, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """evaluate ingests its logs, but took only --map and --mapping-file: a log timed in epoch
    seconds was all ts_out_of_range, and the error's hint named --ts-unit, which evaluate did
    not have. It takes ingest's reading options now."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    _, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(settings.data_dir))
    seconds = tmp_path / "seconds.jsonl"
    seconds.write_text("".join(
        json.dumps({"ts": 1538352077 + 60 * i, "userId": "7", "page": "Home"}) + "\n"
        for i in range(3)
    ))  # fmt: skip
    out = str(tmp_path / "eval")
    plain = CliRunner().invoke(app, ["evaluate", "--data", str(seconds), "--out", out])
    assert plain.exit_code == 1 and "3 rows are ts_out_of_range" in " ".join(plain.output.split())
    read = CliRunner().invoke(
        app, ["evaluate", "--data", str(seconds), "--out", out, "--ts-unit", "s"]
    )
    said = " ".join(read.output.split())  # read now: too short a log to label, not unreadable
    assert read.exit_code == 1 and "expected at least one cutoff" in said, said
    assert "ts_out_of_range" not in said


def test_evaluating_on_the_training_log_says_the_figures_are_in_sample(
    trained: tuple[RunSummary, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The log the model was trained on: every labelled row is one it learnt from, and the
    command says so (the figures read as if out of sample otherwise); metrics.json records it."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    _, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(settings.data_dir))
    log = settings.data_dir.parent / "sim.jsonl.gz"
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["evaluate", "--data", str(log), "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    rows = sum(c["rows"] for c in metrics["per_cutoff"])
    assert metrics["in_sample_rows"] == rows > 0
    text = " ".join(result.output.split())
    said = f"warning: {rows:,} of {rows:,} labelled snapshots (100%) are of users the model "
    assert said in text
    assert "their figures are in-sample" in text and str(settings.data_dir / "store") in text
    assert "their figures are in-sample" in (out / "report.html").read_text()
    # the same log piped in (`zcat log | churnwatch evaluate --data -`): the same figures
    piped = CliRunner().invoke(
        app, ["evaluate", "--data", "-", "--out", str(tmp_path / "piped")], input=log.read_bytes()
    )
    assert piped.exit_code == 0, piped.output
    again = json.loads((tmp_path / "piped" / "metrics.json").read_text())
    assert again["pooled"] == metrics["pooled"] and again["in_sample_rows"] == rows


def test_evaluate_names_a_model_the_registry_lacks_without_a_traceback(
    trained: tuple[RunSummary, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version the registry does not hold, a reference of no known form, and a registry with
    no model at all: each is one line saying what was expected and what came, exit code 1,
    and nothing is written."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    _, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(settings.data_dir))
    log = str(settings.data_dir.parent / "sim.jsonl.gz")
    out = tmp_path / "eval"
    runner = CliRunner()
    cases = {
        "models:/churnwatch/99": "expected the registry to know models:/churnwatch/99",
        "nonsense": "expected a model reference models:/NAME@ALIAS, models:/NAME/VERSION or "
        "runs:/RUN_ID/PATH. Got 'nonsense'.",
    }
    for ref, said in cases.items():
        result = runner.invoke(app, ["evaluate", "--data", log, "--model", ref, "--out", str(out)])
        assert result.exit_code == 1, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert said in " ".join(result.output.split())
        assert "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(empty))
    result = runner.invoke(app, ["evaluate", "--data", log, "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)
    text = " ".join(result.output.split())
    assert "expected the registry to know models:/churnwatch@champion" in text
    assert "Registered Model with name=churnwatch not found" in text
    assert "`churnwatch train` registers a model" in text
    assert not out.exists()


def test_cli_models_promote_serves_another_version(
    trained: tuple[RunSummary, Settings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`churnwatch models promote N` moves `champion` to version N (the old champion becomes
    `previous`); an unknown version is refused with the versions there are. On a copy of the
    registry, so the other tests keep theirs."""
    import shutil

    from typer.testing import CliRunner

    from churnwatch import tracking
    from churnwatch.cli import app

    summary, settings = trained
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(settings.data_dir / "mlflow.db", data / "mlflow.db")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(data))
    tracking.setup(Settings(data_dir=data))
    churn_model = tracking.load("models:/churnwatch@champion").unwrap_python_model()
    with tracking.run("second"):
        second = tracking.log_model(churn_model, summary.result.snapshots.head(50))
    assert second.version == "2" and second.aliases == ()  # a later model does not take over

    runner = CliRunner()
    moved = runner.invoke(app, ["models", "promote", "2"])
    assert moved.exit_code == 0, moved.output
    assert "champion: v2 (was v1" in moved.output
    aliases = {v["version"]: v["aliases"] for v in tracking.list_versions()}
    assert aliases == {"2": ["champion"], "1": ["previous"]}

    again = runner.invoke(app, ["models", "promote", "2"])
    assert again.exit_code == 0 and "already the champion" in again.output
    unknown = runner.invoke(app, ["models", "promote", "7"])
    assert unknown.exit_code == 1
    assert "expected a registered version of churnwatch (2, 1). Got '7'." in unknown.output
    assert {v["version"]: v["aliases"] for v in tracking.list_versions()} == aliases


def test_a_new_store_and_its_registrations_print_nothing_of_mlflows_own(
    trained: tuple[RunSummary, Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The CLI says which version it registered; MLflow's own prints on a registration and its
    logs on creating a new store's tables are not shown. Each version still links its run."""
    import mlflow

    from churnwatch import tracking

    summary, settings = trained
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking.setup(settings)
    churn_model = tracking.load("models:/churnwatch@champion").unwrap_python_model()
    capfd.readouterr()
    tracking.setup(Settings(data_dir=tmp_path / "data"))  # a new store
    registered = []
    for name in ("first", "second"):  # a new registered model, then a new version of it
        with tracking.run(name) as run_id:
            registered.append((tracking.log_model(churn_model, summary.result.snapshots.head(20)),
                               run_id))  # fmt: skip
    printed = capfd.readouterr()
    text = printed.out + printed.err
    chatter = ("Successfully registered", "Created version", "already exists",
               "Creating initial MLflow database tables", "Updating database tables")  # fmt: skip
    assert not [line for line in chatter if line in text], text
    assert [r.version for r, _ in registered] == ["1", "2"]
    assert registered[0][0].aliases == ("champion",) and registered[1][0].aliases == ()
    client = mlflow.MlflowClient()
    for reg, run_id in registered:
        assert client.get_model_version(reg.name, reg.version).run_id == run_id == reg.run_id
    assert tracking.load("models:/churnwatch@champion").predict(
        summary.result.snapshots.head(5)
    ).shape == (5,)


@pytest.mark.filterwarnings("ignore:.*Inferred schema contains integer")
def test_the_signature_from_a_few_rows_is_the_one_from_all(
    trained: tuple[RunSummary, Settings],
) -> None:
    """The registered signature is inferred from a few rows (all of them took 20 s on the
    demo's log); it is the same: a column missing only far down stays optional."""
    from mlflow.models import infer_signature

    from churnwatch import tracking

    summary, _ = trained
    rows = summary.result.snapshots[summary.result.features].reset_index(drop=True)
    floats = [c for c in rows.columns if rows[c].dtype.kind == "f" and rows[c].notna().all()]
    rows[floats[0]] = rows[floats[0]].where(rows.index != len(rows) - 1)  # the last row only
    few = tracking.signature_rows(rows, head=50)
    assert len(few) <= 50 + rows.isna().any().sum() < len(rows)
    assert infer_signature(few) == infer_signature(rows)
    assert not infer_signature(few).inputs.input_dict()[floats[0]].required
