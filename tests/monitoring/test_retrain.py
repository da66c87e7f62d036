"""Retraining: a better challenger is promoted, one that does not beat the champion is not,
and a crash at any step leaves the champion where it was."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier
from sklearn.metrics import roc_auc_score

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.ingest.store import EventStore
from churnwatch.monitoring.retrain import decide, paired_se, retrain


def _aliases(settings: Settings) -> dict[str, str]:
    tracking.setup(settings)
    model = MlflowClient().get_registered_model(tracking.MODEL_NAME)
    return {a: str(v) for a, v in model.aliases.items()}


def _register_constant_champion(settings: Settings, labels_seen_until: str) -> str:
    """A champion that knows nothing: the base rate for everyone, trained (as its parameters
    say) on labels up to `labels_seen_until`."""
    tracking.setup(settings)
    current = tracking.describe("models:/churnwatch@champion")
    strong = tracking.load("models:/churnwatch@champion").unwrap_python_model()
    rows = pd.read_parquet(tracking.download(current["run_id"], "reference.parquet"))
    labelled = rows[rows["label"].notna()]  # the reference holds the latest cutoffs too
    assert labelled["label"].nunique() == 2
    dummy = DummyClassifier(strategy="prior").fit(labelled[strong.features], labelled["label"])
    model = tracking.ChurnModel(dummy, strong.features, 0.5)
    with mlflow.start_run(run_name="constant-champion"):
        # the same recipe, so retraining can follow it
        mlflow.log_params({**current["params"], "labels_seen_until": labels_seen_until})
        reg = tracking.log_model(model, rows, promote_if_first=False)
    tracking.set_aliases({"champion": reg.version})
    return reg.version


def test_decision_rule() -> None:
    assert decide(0.20, 0.25, metric="pr_auc", margin=0.01)[0] is True
    assert decide(0.20, 0.205, metric="pr_auc", margin=0.01)[0] is False
    worse, reason = decide(0.30, 0.20, metric="pr_auc", margin=0.0)
    assert worse is False and "kept as challenger" in reason
    assert decide(0.3, float("nan"), metric="roc_auc", margin=0.0)[0] is False


def test_the_gains_noise_is_measured_by_a_paired_bootstrap_over_users() -> None:
    rng = np.random.default_rng(1)
    users = np.repeat(np.arange(300), 2)
    y = (rng.random(len(users)) < 0.2).astype(int)
    noise = rng.random(len(y))
    same = paired_se(y, noise, noise, users, metric="roc_auc", n_boot=100)
    assert same == 0.0  # the same scores: no gain on any draw
    weak, strong = noise + 0.2 * y, noise + 1.0 * y
    se = paired_se(y, weak, strong, users, metric="roc_auc", n_boot=100)
    gain = roc_auc_score(y, strong) - roc_auc_score(y, weak)
    assert 0 < se < gain / 4  # 120 churners: a gain of this size is far beyond the noise
    fewer = paired_se(y[:100], weak[:100], strong[:100], users[:100], metric="roc_auc", n_boot=100)
    assert fewer > se  # fewer users, more noise


def test_a_better_challenger_is_promoted(data_copy: Settings) -> None:
    weak = _register_constant_champion(data_copy, "2000-01-01")  # trained long ago
    d = retrain(data_copy, n_boot=20)
    assert d.champion_version == weak
    # every backtest cutoff is out of time for both
    split = tracking.describe(f"models:/churnwatch/{d.challenger_version}")["params"]["split"]
    cutoffs = d.window.split(" (")[0].split(", ")
    assert split.startswith(f"backtest {len(cutoffs)} folds, cutoffs {cutoffs[0]}..{cutoffs[-1]}")
    assert d.promoted and d.challenger_score > d.champion_score
    assert "paired standard error of the gain" in d.reason
    aliases = _aliases(data_copy)
    assert aliases["champion"] == d.challenger_version and aliases["previous"] == weak
    assert "challenger" not in aliases
    run = MlflowClient().get_run(d.run_id)
    assert run.data.tags["decision"] == "promoted" and run.data.params["promoted"] == "True"


def test_a_challenger_that_does_not_beat_the_champion_is_not_promoted(
    data_copy: Settings,
) -> None:
    end = EventStore(data_copy.store_path).last_event()
    seen = (end - timedelta(days=30)).date()
    before = _register_constant_champion(data_copy, seen.isoformat())
    d = retrain(data_copy, n_boot=20, margin=1.0)  # nothing beats a PR-AUC by 1.0
    assert not d.promoted and "kept as challenger" in d.reason
    # judged only on the cutoffs whose labels the champion never learnt
    window = [date.fromisoformat(c) for c in d.window.split(" (")[0].split(", ")]
    assert window and min(window) >= seen
    aliases = _aliases(data_copy)
    assert aliases["champion"] == before and aliases["challenger"] == d.challenger_version
    assert "previous" not in aliases


def test_a_champion_is_not_judged_on_labels_it_learnt(data_copy: Settings) -> None:
    """Retraining on the very data the champion learnt: every backtest cutoff's label is one
    the champion was fitted to, so there is nothing to compare out of time, and no promotion."""
    before = _aliases(data_copy)["champion"]
    d = retrain(data_copy, n_boot=20)
    assert not d.promoted and d.window.startswith("none")
    assert "nothing to compare" in d.reason and f"champion v{before} learnt" in d.reason
    aliases = _aliases(data_copy)
    assert aliases["champion"] == before and aliases["challenger"] == d.challenger_version


@pytest.mark.parametrize("where", ["churnwatch.runs.train", "churnwatch.monitoring.retrain.decide"])
def test_a_crash_mid_retrain_keeps_the_champion(
    data_copy: Settings, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    _register_constant_champion(data_copy, "2000-01-01")  # so that a decision is taken
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


def test_the_cli_says_the_decision_once(
    data_copy: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`churnwatch retrain` with nothing new: its progress lines, then the decision once (it
    was also the last progress line), and no source file and line beside the progress."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(data_copy.data_dir))
    result = CliRunner().invoke(app, ["retrain"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "NOT PROMOTED kept as challenger" in text
    assert text.count("nothing to compare the two on out of time") == 1
    assert "training a challenger" in text and "operations.py:" not in text
