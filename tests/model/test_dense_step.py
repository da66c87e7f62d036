"""How densely training snapshots are built depends on how many users the store holds, once
each: ingesting the same log again (as every `python train.py` does) must not change it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churnwatch.config import Settings
from churnwatch.ingest import EventStore, ingest
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
