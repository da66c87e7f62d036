"""Retraining: a better challenger is promoted, one that does not beat the champion is not,
and a crash at any step leaves the champion where it was."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
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
    rows = tracking.read_parquet(current["run_id"], "reference.parquet")
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
    assert re.search(
        r"\([\d,]+ labelled snapshots of [\d,]+ users, [\d,]+ of whom churned\)$", d.window
    )
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
    """Retraining on the very data the champion learnt: no cutoff it is out of time on can be
    labelled yet, so no challenger could be judged against it. Nothing is trained or
    registered; the decision says from which day a comparison is possible, and is logged."""
    tracking.setup(data_copy)
    client = MlflowClient()
    versions = len(client.search_model_versions(f"name='{tracking.MODEL_NAME}'"))
    before = _aliases(data_copy)
    champion = tracking.describe(f"models:/churnwatch/{before['champion']}")
    seen = date.fromisoformat(champion["params"]["labels_seen_until"])
    d = retrain(data_copy, n_boot=20)
    assert not d.promoted and d.challenger_version is None and d.window.startswith("none")
    assert d.reason.startswith(f"not retrained: champion v{before['champion']} learnt")
    horizon, every = (int(champion["params"][k]) for k in ("data_horizon_days", "every_days"))
    anchor = date.fromisoformat(champion["params"]["recipe_anchor"])
    first = d.ready_on - timedelta(days=horizon)  # the first cutoff it could be judged on
    assert seen <= first < seen + timedelta(days=every) and (first - anchor).days % every == 0
    assert d.ready_on > EventStore(data_copy.store_path).last_event().date()
    assert f"retrain once they reach {d.ready_on}" in d.reason
    assert len(client.search_model_versions(f"name='{tracking.MODEL_NAME}'")) == versions
    assert _aliases(data_copy) == before
    run = client.get_run(d.run_id)
    assert run.data.tags["decision"] == "not retrained"
    assert run.data.params["ready_on"] == d.ready_on.isoformat()


@pytest.mark.parametrize("days_late", [1, 0])
def test_a_challenger_is_trained_once_the_data_label_a_cutoff_it_can_be_judged_on(
    data_copy: Settings, days_late: int
) -> None:
    """A champion whose learnt labels end on the store's last labelled weekly cutoff: a
    challenger is trained and judged on it. A day later: the next weekly cutoff is the first
    the champion is out of time on, and the store does not label it yet; not retrained."""
    end = EventStore(data_copy.store_path).last_event()
    params = tracking.describe("models:/churnwatch@champion")["params"]
    horizon, every = (int(params[k]) for k in ("data_horizon_days", "every_days"))
    anchor = date.fromisoformat(params["recipe_anchor"])
    room = (end.date() - timedelta(days=horizon) - anchor).days  # the last labelled: in `room`
    last_labelled = anchor + timedelta(days=room // every * every)
    seen = last_labelled + timedelta(days=days_late)
    _register_constant_champion(data_copy, seen.isoformat())
    d = retrain(data_copy, n_boot=20)
    if days_late:
        assert d.challenger_version is None
        assert d.ready_on == last_labelled + timedelta(days=every + horizon)
    else:
        assert d.challenger_version is not None and d.ready_on is None
        assert d.window.startswith(last_labelled.isoformat())


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
    """`churnwatch retrain` with nothing new: the decision not to train, once, and no source
    file and line beside the output."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(data_copy.data_dir))
    result = CliRunner().invoke(app, ["retrain"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert text.count("Not retrained: champion v") == 1
    assert text.count("retrain once they reach") == 1
    assert "training a challenger" not in text and "operations.py:" not in text


def test_monitor_and_retrain_take_the_store_as_ingest_and_train_do(
    data_copy: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`churnwatch train --store X` made a champion that `monitor` and `retrain` could follow
    only through CHURNWATCH_STORE_DIR: `--store` was no option. They now read the store named,
    not the default one (which exists here)."""
    from typer.testing import CliRunner

    from churnwatch.cli import app

    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(data_copy.data_dir))
    monkeypatch.delenv("CHURNWATCH_STORE_DIR", raising=False)
    assert data_copy.store_path.exists()
    typo = tmp_path / "typo"
    for command in ("monitor", "retrain"):
        result = CliRunner().invoke(app, [command, "--store", str(typo)])
        text = " ".join(result.output.split())
        assert result.exit_code == 1 and f"expected an event store with events at {typo}" in text


def test_the_window_counts_users_and_churners_once() -> None:
    """It said "(1283 users, 53 churners)" of three weekly cutoffs: every user counted at each
    cutoff, and a churner at the two whose 14-day horizon held the churn."""
    from churnwatch.models.evaluate import counted

    rows = pd.DataFrame({"user_id": ["a", "a", "b", "b", "c"], "label": [1, 1, 0, 0, 0],
                         "cutoff": ["d1", "d2", "d1", "d2", "d2"]})  # fmt: skip
    assert counted(rows) == "5 labelled snapshots of 3 users, 1 of whom churned"
