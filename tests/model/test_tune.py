"""Tuning: forward-in-time folds on the training cutoffs only, within the budget; skipped with
a reason when the log is too short."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest

from churnwatch.config import Settings
from churnwatch.features import build_snapshots
from churnwatch.ingest import EventStore, ingest
from churnwatch.models.tune import SPACES, forward_folds, tune
from churnwatch.simulate import SimConfig, simulate


def test_forward_folds_keep_the_horizon_gap() -> None:
    cuts = [date(2020, 1, 1) + timedelta(days=7 * i) for i in range(6)]
    folds = forward_folds(cuts, 14)
    assert [v for _, v in folds] == cuts[2:]
    for fit, v in folds:
        assert all(c + timedelta(days=14) <= v for c in fit)


@pytest.fixture(scope="module")
def long_train(tmp_path_factory: pytest.TempPathFactory) -> object:
    root = tmp_path_factory.mktemp("tune")
    simulate(SimConfig(users=300, days=100, seed=4), root / "log.jsonl.gz")
    ingest([root / "log.jsonl.gz"], settings=Settings(store_dir=root / "store"))
    table, _ = build_snapshots(EventStore(root / "store"))
    df = table.to_pandas()
    df["cutoff_date"] = df["cutoff"].dt.date
    df = df[df["label"].notna()].copy()
    df["label"] = df["label"].astype(int)
    return df


def test_tuning_runs_within_its_budget_and_returns_parameters_from_the_space(
    long_train: object,
) -> None:
    t = time.perf_counter()
    params, note = tune("lightgbm", long_train, horizon_days=14, budget_seconds=6, seed=1)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - t
    assert note.startswith("tuned:") and "forward folds" in note
    assert set(params) == {"num_leaves", "learning_rate", "n_estimators", "min_child_samples",
                           "reg_lambda"}  # fmt: skip
    assert 4 <= params["num_leaves"] <= 63
    assert elapsed < 6 + 15  # the budget, plus at most one trial in flight


def test_tuning_is_skipped_with_a_reason_on_a_short_training_period(long_train: object) -> None:
    df = long_train
    first_two = sorted(df["cutoff_date"].unique())[:2]  # type: ignore[index]
    params, note = tune(
        "xgboost",
        df[df["cutoff_date"].isin(first_two)],
        horizon_days=14,
        budget_seconds=5,  # type: ignore[index]
    )
    assert params == {} and note.startswith("not tuned: 0 forward fold(s)")
    assert tune("heuristic", df, horizon_days=14, budget_seconds=5) == ({}, "not tuned")  # type: ignore[arg-type]
    assert set(SPACES) == {"logistic", "random_forest", "xgboost", "lightgbm"}
