"""Retention-plan benchmark: on the backtest's out-of-time rows, the value a campaign saves when
it targets by the plan (expected net gain: probability x value) against targeting the highest
probabilities and against random targeting, contacting as many users, at the same terms.

    python -m bench plan [--log dev_accordion_500u_seed303] [--n-boot 1000]

Each backtest cutoff is one campaign. Values follow the settings (a paid user: 9.99 per 30
days; a free user: 0), counted over 180 days. Offer: 1 per contact (an e-mail with a discount
code), a save rate of 0.3; budgets of 20, 50 and 100 per campaign.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from churnwatch.config import Settings
from churnwatch.ingest import EventStore, ingest
from churnwatch.models.plan import Offer, compare_targeting, values_for
from churnwatch.models.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "eventsim"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench plan")
    parser.add_argument("--log", default="dev_accordion_500u_seed303")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        ingest([DATA / f"{args.log}.jsonl.gz"], settings=Settings(store_dir=store))
        result = train(EventStore(store), TrainConfig())
    rows = result.test_rows().reset_index(drop=True).copy()
    rows["probability"] = np.asarray(result.test_probability, dtype=float)
    rows["label"] = rows["label"].astype(int)
    out = []
    for budget in (20.0, 50.0, 100.0):
        offer = Offer(budget=budget, offer_cost=1.0, save_rate=0.3, period_days=180)
        rows["value"] = values_for(rows, result.spec, settings, offer.period_days)
        got = compare_targeting(rows[["cutoff", "user_id", "probability", "value", "label"]],
                                offer, n_boot=args.n_boot)  # fmt: skip
        got.update({"log": args.log, "model": result.chosen.label, "budget": budget})
        out.append(got)
        print(
            f"budget {budget:5.0f}/campaign, {got['campaigns']} campaigns, "
            f"{got['contacted']} contacts: saved plan {got['plan_saved']:.1f}, "
            f"probability-only {got['probability_saved']:.1f}, random {got['random_saved']:.1f}; "
            f"plan - probability {got['plan_minus_probability']:.1f} "
            f"[{got['plan_minus_probability_low']:.1f}, {got['plan_minus_probability_high']:.1f}]",
            flush=True,
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "plan.json").write_text(json.dumps(out, indent=1))
