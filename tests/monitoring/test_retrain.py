"""Retraining: a better challenger is promoted, one that does not beat the champion is not,
and a crash at any step leaves the champion where it was."""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.monitoring.retrain import decide, retrain


def _aliases(settings: Settings) -> dict[str, str]:
    tracking.setup(settings)
    model = MlflowClient().get_registered_model(tracking.MODEL_NAME)
    return {a: str(v) for a, v in model.aliases.items()}


def _register_constant_champion(settings: Settings) -> str:
    """A champion that knows nothing: the base rate for everyone."""
    tracking.setup(settings)
    current = tracking.describe("models:/churnwatch@champion")
    strong = tracking.load("models:/churnwatch@champion").unwrap_python_model()
    rows = pd.read_parquet(tracking.download(current["run_id"], "reference.parquet"))
    dummy = DummyClassifier(strategy="prior").fit(rows[strong.features], rows["label"])
    model = tracking.ChurnModel(dummy, strong.features, 0.5)
    with mlflow.start_run(run_name="constant-champion"):
        mlflow.log_params(current["params"])  # the same recipe, so retraining can follow it
        reg = tracking.log_model(model, rows, promote_if_first=False)
    tracking.set_aliases({"champion": reg.version})
    return reg.version


def test_decision_rule() -> None:
    assert decide(0.20, 0.25, metric="pr_auc", margin=0.01)[0] is True
    assert decide(0.20, 0.205, metric="pr_auc", margin=0.01)[0] is False
    worse, reason = decide(0.30, 0.20, metric="pr_auc", margin=0.0)
    assert worse is False and "kept as challenger" in reason
    assert decide(0.3, float("nan"), metric="roc_auc", margin=0.0)[0] is False


def test_a_better_challenger_is_promoted(data_copy: Settings) -> None:
    weak = _register_constant_champion(data_copy)
    d = retrain(data_copy, n_boot=20)
    assert d.champion_version == weak
    assert d.promoted and d.challenger_score > d.champion_score
    aliases = _aliases(data_copy)
    assert aliases["champion"] == d.challenger_version and aliases["previous"] == weak
    assert "challenger" not in aliases
    run = MlflowClient().get_run(d.run_id)
    assert run.data.tags["decision"] == "promoted" and run.data.params["promoted"] == "True"


def test_a_challenger_that_does_not_beat_the_champion_is_not_promoted(
    data_copy: Settings,
) -> None:
    before = _aliases(data_copy)["champion"]
    d = retrain(data_copy, n_boot=20, margin=1.0)  # nothing beats a PR-AUC by 1.0
    assert not d.promoted and "kept as challenger" in d.reason
    aliases = _aliases(data_copy)
    assert aliases["champion"] == before and aliases["challenger"] == d.challenger_version
    assert "previous" not in aliases


@pytest.mark.parametrize("where", ["churnwatch.runs.train", "churnwatch.monitoring.retrain.decide"])
def test_a_crash_mid_retrain_keeps_the_champion(
    data_copy: Settings, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    before = _aliases(data_copy)

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("killed mid-retrain")

    monkeypatch.setattr(where, crash)
    with pytest.raises(RuntimeError, match="killed"):
        retrain(data_copy, n_boot=20)
    assert _aliases(data_copy) == before


def test_retrain_refuses_a_missing_store_and_registers_nothing(data_copy: Settings) -> None:
    from churnwatch.errors import StoreError

    before = _aliases(data_copy)
    versions = len(tracking.list_versions())
    gone = Settings(data_dir=data_copy.data_dir, store_dir=data_copy.data_dir / "typo")
    with pytest.raises(StoreError, match="no store"):
        retrain(gone, n_boot=20)
    assert _aliases(data_copy) == before and len(tracking.list_versions()) == versions
