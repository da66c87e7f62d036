"""Tuning: Optuna on the backtest folds, a fixed number of seeded trials, so the same data and
seed give the same parameters; baselines are never tuned."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnwatch.config import Settings
from churnwatch.features import build_snapshots
from churnwatch.ingest import EventStore, ingest
from churnwatch.labels import CutoffSchedule
from churnwatch.models.backtest import rolling_folds
from churnwatch.models.train import evaluation_cutoffs
from churnwatch.models.tune import SPACES, tune
from churnwatch.simulate import SimConfig, simulate


@pytest.fixture(scope="module")
def long_train(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("tune")
    simulate(SimConfig(users=300, days=100, seed=4), root / "log.jsonl.gz")
    ingest([root / "log.jsonl.gz"], settings=Settings(store_dir=root / "store"))
    table, _ = build_snapshots(EventStore(root / "store"), schedule=CutoffSchedule(every_days=7))
    df = table.to_pandas()
    df["cutoff_date"] = df["cutoff"].dt.date
    df = df[df["label"].notna()].copy()
    df["label"] = df["label"].astype(int)
    return df.reset_index(drop=True)


def test_tuning_runs_its_trials_and_is_reproducible(long_train: pd.DataFrame) -> None:
    folds = rolling_folds(
        long_train, evaluation_cutoffs(sorted(long_train["cutoff_date"].unique()),
                                       CutoffSchedule()), 14, last=3)  # fmt: skip
    w = np.ones(len(long_train))
    params, note = tune("lightgbm", long_train, folds, w, n_trials=3, seed=1)
    assert note.startswith("tuned: 3 of 3 trial(s) over 3 backtest folds")
    assert set(params) == {"num_leaves", "learning_rate", "n_estimators", "min_child_samples",
                           "reg_lambda"}  # fmt: skip
    assert 4 <= params["num_leaves"] <= 63
    again, _ = tune("lightgbm", long_train, folds, w, n_trials=3, seed=1)
    assert again == params


def test_baselines_and_zero_trials_are_not_tuned(long_train: pd.DataFrame) -> None:
    w = np.ones(len(long_train))
    assert tune("rate_rule", long_train, [], w, n_trials=5) == ({}, "not tuned")
    assert tune("lightgbm", long_train, [], w, n_trials=0) == ({}, "not tuned")
    assert {"logistic", "activity_logistic", "lightgbm"} <= set(SPACES)
