"""Retention-plan benchmark: on the backtest's out-of-time rows, the value a campaign saves when
it targets by the plan (expected net gain: probability x value) against targeting the highest
probabilities and against random targeting, contacting as many users, at the same terms.

    python -m bench plan [--logs dev_accordion_500u_seed303 ...] [--n-boot 1000]

Each log is trained on with the defaults; each of its backtest cutoffs is one campaign. Values
follow the settings (a paid user: 9.99 per 30 days; a free user: 0), counted over 180 days.
Offer: 1 per contact (an e-mail with a discount code), a save rate of 0.3; budgets of 20, 50
and 100 per campaign. A last row per budget pools the logs' campaigns (their users are
different people), so that the plan's gain is judged on more churners than one log has.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import EVENTSIM_DIR as DATA
from churnwatch.config import Settings
from churnwatch.ingest import EventStore, ingest
from churnwatch.models.plan import Offer, compare_targeting, values_for
from churnwatch.models.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
LOGS = ("dev_accordion_500u_seed303", "dev_mixed26_seed404", "sparkify_like_accordion_seed101")
BUDGETS = (20.0, 50.0, 100.0)
PERIOD_DAYS = 180  # a user's value is counted over this many days
COLUMNS = ["cutoff", "user_id", "probability", "value", "label"]


def _campaign_rows(log: str, settings: Settings) -> tuple[pd.DataFrame, str]:
    """The backtest's out-of-time rows of one log, with their probabilities, values and
    labels, and the chosen model."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        ingest([DATA / f"{log}.jsonl.gz"], settings=Settings(store_dir=store))
        result = train(EventStore(store), TrainConfig())
    rows = result.test_rows().reset_index(drop=True).copy()
    rows["probability"] = np.asarray(result.test_probability, dtype=float)
    rows["label"] = rows["label"].astype(int)
    rows["value"] = values_for(rows, result.spec, settings, PERIOD_DAYS)
    # a campaign is one cutoff of one log
    rows["cutoff"] = log + " " + rows["cutoff"].astype(str)
    return rows[COLUMNS], result.chosen.label


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench plan")
    parser.add_argument("--logs", nargs="+", default=list(LOGS))
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    settings = Settings()
    logs = {log: _campaign_rows(log, settings) for log in args.logs}
    out = []
    for budget in BUDGETS:
        offer = Offer(budget=budget, offer_cost=1.0, save_rate=0.3, period_days=PERIOD_DAYS)
        for log, (rows, model) in logs.items():
            out.append(_report(compare_targeting(rows, offer, n_boot=args.n_boot),
                               log=log, model=model, budget=budget))  # fmt: skip
        if len(logs) > 1:
            pooled = pd.concat([rows for rows, _ in logs.values()], ignore_index=True)
            out.append(_report(compare_targeting(pooled, offer, n_boot=args.n_boot),
                               log="pooled", model="each log's own", budget=budget))  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plan.json").write_text(json.dumps(out, indent=1))


def _report(got: dict[str, Any], **about: Any) -> dict[str, Any]:
    got.update(about)
    print(
        f"{got['log']}: budget {got['budget']:.0f}/campaign, {got['campaigns']} campaigns, "
        f"{got['contacted']} contacts: saved plan {got['plan_saved']:.1f}, "
        f"probability-only {got['probability_saved']:.1f}, random {got['random_saved']:.1f}; "
        f"plan - probability {got['plan_minus_probability']:.1f} "
        f"[{got['plan_minus_probability_low']:.1f}, {got['plan_minus_probability_high']:.1f}]",
        flush=True,
    )
    return got
