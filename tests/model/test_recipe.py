"""The training recipe travels with the model: logged once, read back by every consumer; no
silent fallbacks; the same seed gives the same model."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.errors import InputError
from churnwatch.features.catalog import feature_names
from churnwatch.labels import ChurnDefinition, CutoffSchedule
from churnwatch.models.train import TrainConfig
from churnwatch.recipe import Recipe, feature_version
from churnwatch.runs import RunSummary, run_training
from churnwatch.simulate import SimConfig, simulate

DEFINITION = ChurnDefinition(kind="inactivity", horizon_days=14, inactivity_days=21,
                             include_downgrade=True)  # fmt: skip


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> tuple[RunSummary, Settings, Path]:
    """A model trained with a non-default recipe: inactivity of 21 days, downgrades counted,
    cutoffs every 3 days."""
    root = tmp_path_factory.mktemp("recipe")
    log = root / "sim.jsonl.gz"
    simulate(SimConfig(users=300, days=84, seed=5), log)
    settings = Settings(data_dir=root / "data")
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = TrainConfig(
        definition=DEFINITION,
        schedule=CutoffSchedule(every_days=3, min_history_days=10),
        models=("rate_rule", "activity_logistic"),
        n_boot=20,
    )
    summary = run_training(settings=settings, config=config, data=[str(log)])
    mp.undo()
    return summary, settings, log


def _recipe(settings: Settings) -> Recipe:
    from churnwatch import tracking

    tracking.setup(settings)
    return tracking.read_recipe(tracking.describe(settings.model_ref))


def test_the_recipe_is_logged_once_and_read_back(odd: Any, monkeypatch: Any) -> None:
    from churnwatch import tracking

    summary, settings, _ = odd
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    recipe = _recipe(settings)
    assert recipe.definition == DEFINITION
    assert (recipe.every_days, recipe.min_history_days) == (3, 10)
    assert recipe.model == summary.result.chosen.name and recipe.threshold_rule == "f1"
    assert recipe.params == summary.result.chosen.params
    assert recipe.threshold == pytest.approx(summary.result.threshold)
    assert recipe.features == tuple(feature_names()) and recipe.feature_version == feature_version()
    assert recipe.anchor == summary.result.backtest.folds[0].cutoff
    params = tracking.describe(settings.model_ref)["params"]
    assert params["recipe_inactivity_days"] == "21" and params["recipe_every_days"] == "3"
    assert params["recipe_include_downgrade"] == "True"
    assert Recipe.from_dict(recipe.to_dict()) == recipe  # the JSON round trip is lossless
    # the retrain challenger is trained the same way
    config = TrainConfig.from_recipe(recipe)
    assert config.definition == DEFINITION and config.schedule == recipe.schedule
    assert config.models == (recipe.model,)


def test_serving_scoring_and_monitoring_follow_the_recipe(
    odd: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    from churnwatch.monitoring.monitor import monitor
    from churnwatch.serving.batch import score_store
    from churnwatch.serving.service import ChurnService, NotActiveError

    _, settings, _ = odd
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    scratch = tmp_path / "tmp"  # the temporary folder of everything below
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    service = ChurnService(settings)
    info = service.load()
    assert info.recipe.definition == DEFINITION
    _, pop = service.population()
    quiet = pd.Timestamp(pop.cutoff) - pop.users["last_ts"]
    # the population is the inactivity model's: no one scored was quiet for 21 days or more
    scored = quiet[quiet.index.isin(pop.frame.index)]
    assert len(scored) > 50 and (scored < timedelta(days=21)).all()
    gone = quiet[quiet >= timedelta(days=21)].index
    assert len(gone) > 0
    with pytest.raises(NotActiveError, match="21 days of inactivity"):
        service.predict_user(str(gone[0]))
    # batch scoring builds the same population
    report = score_store(settings=settings, out=tmp_path / "scores.parquet")
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert report.users == len(pop.frame) and set(scores["user_id"]) == set(pop.frame.index)
    # monitoring scores on the recipe's schedule: every 3 days from its anchor
    recipe = info.recipe
    mon = monitor(settings, out_dir=tmp_path / "monitor", log_to_mlflow=False)
    assert recipe.anchor is not None
    assert (pd.Timestamp(mon.cutoff).date() - recipe.anchor).days % 3 == 0
    # the dashboard counts churn as the model does: going quiet, not cancelling
    from churnwatch.serving.routes.dashboard import overview, retention

    assert overview(service)["churn"] == "go quiet for 21 days"
    curves = retention(service, None)
    assert curves["title"] == "Share not yet gone quiet for 21 days"
    assert curves["by_level"] and min(c["retained"][-1] for c in curves["by_level"]) < 1.0
    # each read the recipe and monitoring its references too, and left no copy behind
    assert sorted(p.name for p in scratch.iterdir()) == []


def test_evaluate_uses_the_models_definition(odd: Any, monkeypatch: Any, tmp_path: Path) -> None:
    import json

    from churnwatch.runs import evaluate_registered

    _, settings, _ = odd
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    other = tmp_path / "other.jsonl.gz"
    simulate(SimConfig(users=200, days=70, seed=77), other)
    ev = evaluate_registered(settings.model_ref, [str(other)], out_dir=tmp_path / "ev",
                        settings=settings, n_boot=20)  # fmt: skip
    written = json.loads(ev.metrics_path.read_text())
    assert ChurnDefinition(**written["recipe"]["definition"]) == DEFINITION
    assert "inactivity of 21 days" in written["labels"] and "overridden" not in written["labels"]
    # a flag overrides the recipe, and the output says so
    ev2 = evaluate_registered(settings.model_ref, [str(other)], out_dir=tmp_path / "ev2",
                         settings=settings, horizon_days=7, n_boot=20)  # fmt: skip
    assert ev2.recipe.definition.horizon_days == 7 and "overridden: horizon=7" in ev2.recipe_source
    assert ev2.recipe.definition.inactivity_days == 21


def test_train_refuses_a_missing_or_empty_store(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "empty").mkdir()
    for store in (tmp_path / "a" / "typo", tmp_path / "empty"):
        result = CliRunner().invoke(app, ["train", "--store", str(store)])
        assert result.exit_code == 1, result.output
        said = " ".join(result.output.split())  # rich wraps long lines
        assert "expected an event store with events" in said and "Got no store" in said
    # nothing was simulated, trained or registered
    assert not (tmp_path / "data" / "mlflow.db").exists()
    assert not (tmp_path / "data" / "simulated").exists()


def test_the_same_seed_gives_the_same_model(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    log = tmp_path / "sim.jsonl.gz"
    simulate(SimConfig(users=250, days=63, seed=9), log)
    config = TrainConfig(models=("rate_rule", "activity_logistic", "lightgbm"), n_boot=20,
                         n_trials=2)  # fmt: skip
    runs = [
        run_training(settings=Settings(data_dir=tmp_path / f"d{i}"), config=config, data=[str(log)])
        for i in range(2)
    ]
    a, b = (r.result for r in runs)
    assert a.chosen.label == b.chosen.label and a.chosen.params == b.chosen.params
    np.testing.assert_array_equal(a.test_probability, b.test_probability)
    pd.testing.assert_frame_equal(runs[0].at_risk, runs[1].at_risk)
    assert "2 of 2 trial(s)" in next(c.tuning for c in a.candidates if c.name == "lightgbm")


def test_the_drift_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    from churnwatch.monitoring.demo import MARKER, _fresh

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    with pytest.raises(InputError, match="new or empty folder"):
        _fresh(mine)
    assert (mine / "thesis.tex").read_text() == "years of work"
    result = CliRunner().invoke(app, ["demo", "--out", str(mine)])
    assert result.exit_code == 1 and (mine / "thesis.tex").exists()
    assert "new or empty folder" in result.output
    made = tmp_path / "made"
    _fresh(made)
    (made / "old.txt").write_text("from the last demo")
    _fresh(made)  # the demo's own folder is emptied and reused
    assert [p.name for p in made.iterdir()] == [MARKER]


def test_the_feature_version_covers_definitions_and_a_change_is_told(monkeypatch: Any) -> None:
    """The version hashes each feature's SQL too: a changed definition changes it, and a model
    trained on the old one is told (served models say so on /model and in the log)."""
    import dataclasses

    import churnwatch.recipe as recipe_module
    from churnwatch.features.catalog import catalog
    from churnwatch.recipe import feature_mismatch

    now = feature_version()
    assert feature_mismatch(Recipe(feature_version=now), "v1") is None
    assert feature_mismatch(Recipe(), "v1") is None  # nothing recorded: nothing to compare
    told = feature_mismatch(Recipe(feature_version="0123456789ab"), "model v1")
    assert told is not None and "model v1 was trained with feature version 0123456789ab" in told
    assert f"computes version {now}" in told

    features = list(catalog())
    changed = [dataclasses.replace(features[-1], sql=f"({features[-1].sql}) + 0")]
    monkeypatch.setattr(recipe_module, "catalog", lambda spec=None: [*features[:-1], *changed])
    assert feature_version() != now  # same names and kinds, another definition
