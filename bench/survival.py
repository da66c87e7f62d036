"""Survival benchmark: the served P(churn within 14 days), read as a constant daily hazard,
judged out of time as a survival model against Kaplan-Meier curves by level.

    python -m bench survival [--log dev_accordion_500u_seed303]

Trained with the defaults; the backtest's out-of-time rows (six weekly cutoffs) are scored at
7, 14, 30 and 60 days against the real time to cancellation (censored at the end of the log).
The Kaplan-Meier baseline is fitted on the training period only: the rows before the first
backtest cutoff, their follow-up cut at that cutoff.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from bench import EVENTSIM_DIR as DATA
from churnwatch.config import Settings
from churnwatch.ingest import EventStore, ingest
from churnwatch.models.survival import (
    auc_at,
    durations,
    integrated_brier,
    kaplan_meier,
    risk_at,
    step,
)
from churnwatch.models.train import TrainConfig, train
from churnwatch.schema import CHURN_PAGE

ROOT = Path(__file__).resolve().parents[1]
DAYS = (1, 7, 14, 21, 30, 45, 60)


def _day(ts: pd.Series) -> np.ndarray:
    """Days since the epoch (UTC), whatever the timestamps' unit."""
    since = pd.to_datetime(ts, utc=True) - pd.Timestamp(0, tz="UTC")
    return np.asarray(since // pd.Timedelta(days=1), dtype=np.int64)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench survival")
    parser.add_argument("--log", default="dev_accordion_500u_seed303")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = EventStore(Path(tmp) / "store")
        ingest([DATA / f"{args.log}.jsonl.gz"], settings=Settings(store_dir=store.root))
        result = train(store, TrainConfig())
        con = duckdb.connect()
        store.register(con)
        churn = con.execute(
            "SELECT user_id, MIN(ts) FILTER (page = $p) AS churn_ts, MAX(ts) AS last_ts "
            "FROM events GROUP BY user_id", {"p": CHURN_PAGE}
        ).df()  # fmt: skip
    gone = churn.dropna(subset=["churn_ts"])
    churn_day = pd.Series(_day(gone["churn_ts"]), index=gone["user_id"].astype(str))
    end_day = int(_day(churn["last_ts"]).max())
    h = result.horizon_days
    test = result.test_rows().reset_index(drop=True).copy()
    test["cutoff_day"] = _day(test["cutoff"])
    test["user_id"] = test["user_id"].astype(str)
    p = np.asarray(result.test_probability, dtype=float)
    dur, ev = durations(test, churn_day, end_day)
    # Kaplan-Meier by level on the training period, follow-up cut at the first backtest cutoff
    first = min(f.cutoff for f in result.backtest.folds)
    first_day = int(_day(pd.Series([pd.Timestamp(first)]))[0])
    snaps = result.snapshots.copy()
    snaps["cutoff_day"] = _day(snaps["cutoff"])
    snaps["user_id"] = snaps["user_id"].astype(str)
    past = snaps[snaps["cutoff_day"] < first_day].reset_index(drop=True)
    p_dur, p_ev = durations(past, churn_day, first_day - 1)
    p_ev &= p_dur <= (first_day - past["cutoff_day"].to_numpy())
    curves = {}
    for level, g in past.groupby("level"):
        curves[level] = kaplan_meier(p_dur[g.index], p_ev[g.index])
    overall = kaplan_meier(p_dur, p_ev)

    def km(level_col: pd.Series, t: int) -> np.ndarray:
        return np.array([step(*curves.get(lv, overall), t) for lv in level_col], dtype=float)

    model_s = [1 - risk_at(p, h, t) for t in DAYS]
    km_s = [km(test["level"], t) for t in DAYS]
    flat_s = [np.full(len(test), float(step(*overall, t))) for t in DAYS]
    out = {
        "log": args.log,
        "model": result.chosen.label,
        "rows": len(test),
        "events": int(ev.sum()),
        "classifier_roc_auc_14d": result.chosen.test["roc_auc"].value,
        **{f"td_auc_{t}d": auc_at(risk_at(p, h, t), dur, ev, t) for t in (7, 14, 30, 60)},
        **{
            f"km_level_td_auc_{t}d": auc_at(1 - km(test["level"], t), dur, ev, t)
            for t in (7, 14, 30, 60)
        },  # fmt: skip
        "ibs_model": integrated_brier(model_s, DAYS, dur, ev),
        "ibs_km_by_level": integrated_brier(km_s, DAYS, dur, ev),
        "ibs_km": integrated_brier(flat_s, DAYS, dur, ev),
    }
    for k, v in out.items():
        print(f"{k:24s} {v:.4f}" if isinstance(v, float) else f"{k:24s} {v}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "survival.json").write_text(json.dumps(out, indent=1))
