"""How densely training snapshots are built depends on how many users the store holds, once
each: ingesting the same log again (as every `python train.py` does) must not change it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churnwatch.config import Settings
from churnwatch.ingest import EventStore, ingest
from churnwatch.models.estimators import SEED_COUNTS, fit_model
from churnwatch.models.train import TrainConfig, _dense_step
from churnwatch.simulate import SimConfig, simulate


def test_the_training_step_counts_each_user_once(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl.gz"
    simulate(SimConfig(users=60, days=30, seed=5), log)
    store_dir = tmp_path / "store"
    settings = Settings(store_dir=store_dir, data_dir=tmp_path)
    ingest([log], settings=settings, store_dir=store_dir)
    store = EventStore(store_dir)
    users = store.users()
    ids = set().union(*(pd.read_parquet(f, columns=["user_id"])["user_id"]
                         for f in store.files("events")))  # fmt: skip
    assert users == len(ids) > 0
    days = max((pd.Timestamp(store.last_event()) - pd.Timestamp(
        str(store.manifest().ingests[0]["first_ts"]))).days, 1)  # fmt: skip
    # a budget that daily snapshots of these users just fit
    config = TrainConfig(row_budget=users * days)
    assert _dense_step(store, config) == 1
    for _ in range(2):  # the same log again: nothing new is stored
        ingest([log], settings=settings, store_dir=store_dir)
    assert len(store.manifest().ingests) == 3 and store.users() == users
    assert _dense_step(store, config) == 1  # the manifest's counts summed would say 3x
    assert _dense_step(store, TrainConfig(row_budget=users * days // 3)) > 1


def test_a_forest_draws_one_row_per_user_week_from_daily_snapshots() -> None:
    """Daily snapshots weighted 1/7 are near-copies of each other: each tree of a forest draws
    as many rows as there are user-weeks; unweighted rows are drawn in full."""
    rng = np.random.default_rng(0)
    n = 7_000
    X = pd.DataFrame(rng.normal(size=(n, len(SEED_COUNTS))), columns=list(SEED_COUNTS))
    y = (rng.random(n) < 0.2).astype(int)
    for name in ("seed_rf", "random_forest"):
        daily = fit_model(name, {}, X, y, np.full(n, 1 / 7), seed=0).named_steps["model"]
        whole = fit_model(name, {}, X, y, np.ones(n), seed=0).named_steps["model"]
        # a tree's root holds the distinct rows it drew: n/7 draws give about 93 % of n/7
        # distinct rows, all n draws about 63 % of n
        drawn = [t.tree_.n_node_samples[0] for t in daily.estimators_]
        assert 0.85 * n / 7 < min(drawn) <= max(drawn) <= n / 7
        assert min(t.tree_.n_node_samples[0] for t in whole.estimators_) > n / 2
