"""How often does drift monitoring flag a log with no shift, and how often one with the
simulator's app-release shift (adverts x2 for free users, errors x3)?

    python -m bench.drift_alarms [--seeds 5]

For each seed: two simulated logs, identical until the drift day (day 56 of 84); the
reference is the snapshots of days 35 and 42, the current window day 70 (two weeks after the
drift day). Prints the share of drifted features (Evidently's default tests) for each, and
the alarm rates at several thresholds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from churnwatch.features.catalog import feature_names
from churnwatch.monitoring.demo import drift_windows
from churnwatch.monitoring.drift import detect_drift, monitored_features


def shares(seed: int, root: Path) -> dict[str, float]:
    out = {}
    for name, drift_day in (("unshifted", None), ("shifted", 56)):
        ref, cur = drift_windows(root, seed=seed, drift_day=drift_day)
        result = detect_drift(ref, cur, monitored_features(feature_names()))
        cols = result.columns[result.columns["column"] != "score"]
        out[name] = result.share
        out[f"{name}_evidently"] = result.evidently_share
        out[f"{name}_psi02"] = float((cols["psi"] >= 0.2).mean())
        out[f"{name}_top"] = ",".join(cols.nlargest(4, "psi")["column"])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_alarms", description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            rows.append({"seed": seed, **shares(seed, Path(tmp))})
            print(json.dumps(rows[-1]), flush=True)
    for suffix in ("", "_evidently", "_psi02"):
        for s in (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3):
            fa = np.mean([r["unshifted" + suffix] >= s for r in rows])
            hit = np.mean([r["shifted" + suffix] >= s for r in rows])
            print(
                f"rule{suffix or ' test+psi>=0.1'} threshold {s:.2f}: false alarms {fa:.0%}, "
                f"shifted logs flagged {hit:.0%}"
            )


if __name__ == "__main__":
    main()
