"""Which reference makes drift monitoring quiet on a log where nothing changes?

    python -m bench.drift_reference

On each eventsim log in ../shared/data/eventsim (no shift in any of them): for a model
"trained" at every weekly cutoff T that leaves at least one backtest fold, the drift share of
the current window 1, 2 and 3 weeks after T against two references:

- backtest: the evaluated cutoffs of the backtest a run at T would make (weekly cutoffs whose
  labels had matured by T, at most 6), what `monitor` compared with until 2026-11-27;
- latest: every user at the last 3 weekly cutoffs up to T, labelled or not (what it compares
  with now, `churnwatch.runs.write_reference`).

Prints one line per (log, T, weeks later) and the count of drift alerts (share >= the default
`alert_drift_share`). Nothing is trained: drift is about the features.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import warnings
from datetime import timedelta
from pathlib import Path

import pandas as pd

from bench import EVENTSIM_DIR
from churnwatch.config import Settings
from churnwatch.errors import InputError
from churnwatch.features.build import build_snapshots
from churnwatch.features.catalog import feature_names
from churnwatch.ingest import EventStore, ingest
from churnwatch.labels import CutoffSchedule
from churnwatch.models.backtest import rolling_folds
from churnwatch.monitoring.drift import detect_drift, monitored_features
from churnwatch.runs import REFERENCE_CUTOFFS

LOGS = ("sparkify_like_accordion_seed101", "dev_mixed26_seed404", "dev_accordion_500u_seed303")
HORIZON = 14


def weekly_snapshots(log: Path, root: Path) -> pd.DataFrame:
    settings = Settings(data_dir=root)
    ingest([str(log)], settings=settings, store_dir=root / "store")
    table, _ = build_snapshots(EventStore(root / "store"), schedule=CutoffSchedule(),
                               settings=settings)  # fmt: skip
    snaps = table.to_pandas()
    snaps["cutoff_date"] = snaps["cutoff"].dt.date
    snaps["score"] = 0.0  # no model: only the features are compared
    return snaps


def backtest_cutoffs(snaps: pd.DataFrame, t: pd.Timestamp) -> list:
    """The evaluated cutoffs of a backtest run with the data up to `t`."""
    seen = snaps[snaps["cutoff"] + timedelta(days=HORIZON) <= t]
    labelled = seen[seen["label"].notna()]
    if labelled.empty:
        return []
    try:
        folds = rolling_folds(labelled, sorted(labelled["cutoff_date"].unique()), HORIZON)
    except InputError:
        return []
    return [f.cutoff for f in folds]


def compare(name: str, snaps: pd.DataFrame) -> list[dict]:
    feats = monitored_features(feature_names())
    cuts = sorted(snaps["cutoff"].unique())
    rows = []
    for i, t in enumerate(cuts):
        old = backtest_cutoffs(snaps, t)
        if not old:
            continue
        refs = {
            "backtest": snaps[snaps["cutoff_date"].isin(old)],
            "latest": snaps[snaps["cutoff"].isin(cuts[max(0, i - REFERENCE_CUTOFFS + 1) : i + 1])],
        }
        for weeks in (1, 2, 3):
            if i + weeks >= len(cuts):
                break
            current = snaps[snaps["cutoff"] == cuts[i + weeks]]
            row = {"log": name, "trained": str(t)[:10], "weeks_later": weeks}
            for ref_name, ref in refs.items():
                row[ref_name] = round(detect_drift(ref, current, feats).share, 3)
            rows.append(row)
            print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_reference", description=__doc__)
    parser.add_argument("--eventsim", type=Path, default=EVENTSIM_DIR)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    threshold = Settings().alert_drift_share
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in LOGS:
            snaps = weekly_snapshots(args.eventsim / f"{name}.jsonl.gz", Path(tmp) / name)
            rows += compare(name, snaps)
    table = pd.DataFrame(rows)
    print(table.groupby("log")[["backtest", "latest"]].agg(["median", "max"]).to_string())
    for ref in ("backtest", "latest"):
        alerts = table[table[ref] >= threshold]
        print(f"{ref}: drift alert in {len(alerts)} of {len(table)} comparisons "
              f"(trained {', '.join(sorted(set(alerts['trained'])))})")  # fmt: skip


if __name__ == "__main__":
    main()
