"""Transfer benchmark: how a model trained on one eventsim log ranks the users of logs it never
learnt from, side by side with the baselines, with 95 % intervals over users.

    python -m bench quality [--n-boot 300] [--out bench/results] [--matrix | --logs LOG...]

1. Train with the defaults (`TrainConfig()`) on the 253-user dev log.
2. Score the labelled weekly snapshots of `dev_accordion_500u_seed303` (same config, later
   and larger) and `dev_mixed26_seed404` (eventsim's 26 configs) with the chosen model and with
   every baseline fitted the same way on the dev log.
3. Backtest out of time within the 500-user log (train's own rolling-origin backtest).
4. On the default simulated log, the chosen model against the simulator's true hazard.

Nothing here is tuned on the evaluated logs: they are only scored.

`--matrix` instead trains with the defaults on each of the three logs in turn and scores the
other two: the chosen model, the two baselines that train chooses among, and the candidate the
dev log chooses (`activity_logistic` C=0.01) fitted the same way, so that a choice made on one
log can be read against what the others would have done.

`--logs LOG...` instead scores other eventsim logs (a log kept for evaluation) as in step 2:
the model trained on the dev log, the baselines and the two bounds, the same rows as the
table's for the development logs, written to `quality_logs.json`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from bench import EVENTSIM_DIR as DATA
from churnwatch.config import Settings
from churnwatch.db import event_files
from churnwatch.features import build_snapshots
from churnwatch.ingest import EventStore, ingest
from churnwatch.models.estimators import BASELINES
from churnwatch.models.metrics import evaluate_scores, oracle_metrics
from churnwatch.models.train import TrainConfig, fit_calibrated, train
from churnwatch.simulate import DEFAULT_LOG, log_stem, simulate, truth_path

ROOT = Path(__file__).resolve().parents[1]
DEV = "sparkify_like_accordion_seed101"
OTHERS = ("dev_accordion_500u_seed303", "dev_mixed26_seed404")
KEYS = ("roc_auc", "pr_auc", "lift_top10", "brier")


def _store(log: Path, folder: Path) -> EventStore:
    ingest([log], settings=Settings(store_dir=folder), store_dir=folder)
    return EventStore(folder)


def _labelled(store: EventStore) -> pd.DataFrame:
    table, _ = build_snapshots(store)
    df = table.to_pandas()
    df = df[df["label"].notna()].reset_index(drop=True)
    df["label"] = df["label"].astype(int)
    return df


def _row(log: str, model: str, y: np.ndarray, p: np.ndarray, users: np.ndarray,
         n_boot: int, **extra: Any) -> dict[str, Any]:  # fmt: skip
    est = evaluate_scores(y, p, users, threshold=0.5, n_boot=n_boot)
    out: dict[str, Any] = {"log": log, "model": model, "rows": len(y), "churners": int(y.sum())}
    for k in KEYS:
        out[k] = [est[k].value, est[k].low, est[k].high]
    out["base_brier"] = float(np.mean((y - y.mean()) ** 2))
    return {**out, **extra}


def _whole_log_rates(store: EventStore) -> pd.DataFrame:
    """Each user's sessions per day over the whole log: from registration or the log's start
    (whichever is later, never after the first event) to the user's cancellation or the log's
    end. It reads the future, so it is no model: it bounds what history can tell."""
    sql = f"""
        WITH ev AS (SELECT user_id, session_id, ts, page, registration
                    FROM {event_files(store.files("events"))} WHERE user_id <> ''),
        bounds AS (SELECT min(ts) AS log_start, max(ts) AS log_end FROM ev),
        per_user AS (
            SELECT user_id, count(DISTINCT session_id) AS sessions, min(ts) AS first_ts,
                   max(ts) AS last_ts, max(registration) AS reg,
                   bool_or(page = 'Cancellation Confirmation') AS cancelled
            FROM ev GROUP BY user_id)
        SELECT user_id, sessions / greatest(epoch(
                   CASE WHEN cancelled THEN last_ts ELSE log_end END
                   - greatest(log_start, least(first_ts, coalesce(reg, first_ts)))) / 86400, 1)
               AS rate
        FROM per_user, bounds"""
    with duckdb.connect() as con:
        frame: pd.DataFrame = con.execute(sql).df()
    return frame


def ceiling(log: str, store: EventStore, df: pd.DataFrame, n_boot: int) -> list[dict[str, Any]]:
    """Two bounds on the ranking of `df`'s rows: eventsim gives every user a fixed rate of
    sessions and a chance of cancelling in a session that depends only on the level, so what
    history can tell about a user is the rate and the level. (a) The rate measured over the
    whole log; (b) a logistic regression of the label on its log and the level, fitted on the
    scored rows themselves. Both read the future: no model is expected to reach them."""
    rate = df["user_id"].map(_whole_log_rates(store).set_index("user_id")["rate"]).to_numpy()
    y, users = df["label"].to_numpy(), df["user_id"].to_numpy()
    X = np.c_[np.log(rate), df["is_paid"].to_numpy(dtype=float)]
    fitted = LogisticRegression(class_weight="balanced").fit(X, y).predict_proba(X)[:, 1]
    ranked = rate / (1 + rate)  # the same order, in [0, 1]
    rows = [_row(f"{log} (bound)", "session rate over the whole log", y, ranked, users, n_boot),
            _row(f"{log} (bound)", "whole-log session rate and level, fitted in sample",
                 y, fitted, users, n_boot)]  # fmt: skip
    for r in rows:  # rankings, not calibrated probabilities
        r["brier"] = None
    return rows


def transfer(
    tmp: Path, n_boot: int, logs: list[Path]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    started = time.perf_counter()
    dev = _store(DATA / f"{DEV}.jsonl.gz", tmp / "dev")
    result = train(dev, TrainConfig(n_boot=n_boot))
    seconds = time.perf_counter() - started
    lab = result.snapshots[result.snapshots["label"].notna()]
    y_dev = lab["label"].astype(int).to_numpy()
    w = np.full(len(lab), 1 / 7)
    models = {result.chosen.label + " (chosen)": result.chosen.estimator}
    for b in BASELINES:
        if b != result.chosen.name:
            models[b] = fit_calibrated(b, {}, lab, y_dev, w, seed=0)[0]
    rows = []
    for k, log in enumerate(logs):
        name = log_stem(log)
        store = _store(log, tmp / f"scored-{k}")
        df = _labelled(store)
        y, users = df["label"].to_numpy(), df["user_id"].to_numpy()
        for model, est in models.items():
            rows.append(_row(name, model, y, est.predict_proba(df)[:, 1], users, n_boot))
        rows += ceiling(name, store, df, n_boot)
    info = {"chosen": result.chosen.label, "rule": result.choice.rule,
            "reason_features": result.reason_features,
            "train_seconds": seconds, "choice": result.choice.table}  # fmt: skip
    return rows, info


def backtest_500(tmp: Path, n_boot: int) -> tuple[list[dict[str, Any]], float]:
    store = EventStore(tmp / "scored-0")  # ingested by transfer(), the first of OTHERS
    started = time.perf_counter()
    result = train(store, TrainConfig(n_boot=n_boot))
    seconds = time.perf_counter() - started
    rows = []
    for c in result.candidates:
        out: dict[str, Any] = {"log": f"{OTHERS[0]} (backtest)", "model": c.label
                               + (" (chosen)" if c is result.chosen else "")}  # fmt: skip
        for k in KEYS:
            e = c.test.get(k)
            out[k] = None if e is None else [e.value, e.low, e.high]
        out["mean_fold_roc_auc"] = c.mean_roc_auc
        out["base_brier"] = result.base_rate_brier
        rows.append(out)
    return rows, seconds


def simulated(tmp: Path, n_boot: int) -> dict[str, Any]:
    log = tmp / "sim" / "default.jsonl.gz"
    simulate(DEFAULT_LOG, log)
    result = train(_store(log, tmp / "sim" / "store"), TrainConfig(n_boot=n_boot))
    oracle = oracle_metrics(result.test_rows(), result.test_probability, [truth_path(log)],
                            horizon_days=result.horizon_days)  # fmt: skip
    return {"chosen": result.chosen.label, **oracle,
            "test_roc_auc": result.chosen.test["roc_auc"].value}  # fmt: skip


REFERENCE = ("activity_logistic", {"C": 0.01})  # what the dev log chooses


def matrix(tmp: Path, n_boot: int) -> list[dict[str, Any]]:
    """Train on each log with the defaults, score the others (see the module's docstring)."""
    logs = (DEV, *OTHERS)
    stores = {n: _store(DATA / f"{n}.jsonl.gz", tmp / n) for n in logs}
    labelled = {n: _labelled(s) for n, s in stores.items()}
    rows = []
    for src in logs:
        result = train(stores[src], TrainConfig(n_boot=n_boot))
        lab = result.snapshots[result.snapshots["label"].notna()]
        y_src, w = lab["label"].astype(int).to_numpy(), np.full(len(lab), 1 / 7)
        models = {result.chosen.label + " (chosen)": result.chosen.estimator}
        for name, params in (("rate_rule", {}), ("seed_logistic", {}), REFERENCE):
            label = name + "".join(f" {k}={v}" for k, v in params.items())
            if label != result.chosen.label:
                models[label] = fit_calibrated(name, params, lab, y_src, w, seed=0)[0]
        for dst in logs:
            if dst == src:
                continue
            df = labelled[dst]
            y, users = df["label"].to_numpy(), df["user_id"].to_numpy()
            for model, est in models.items():
                rows.append(_row(f"{src} -> {dst}", model, y, est.predict_proba(df)[:, 1],
                                 users, n_boot))  # fmt: skip
    return rows


def _fmt(v: list[float] | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v[0]:.{digits}f} [{v[1]:.{digits}f}, {v[2]:.{digits}f}]"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| log | model | ROC-AUC | PR-AUC | lift@10% | Brier (base rate) |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        brier = "-" if r["brier"] is None else f"{_fmt(r['brier'], 4)} ({r['base_brier']:.4f})"
        lines.append(f"| {r['log']} | {r['model']} | {_fmt(r['roc_auc'])} | "
                     f"{_fmt(r['pr_auc'])} | {_fmt(r['lift_top10'], 2)} | {brier} |")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench quality", description=__doc__)
    parser.add_argument("--n-boot", type=int, default=300)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--matrix", action="store_true",
                       help="train on each log in turn and score the other two")  # fmt: skip
    which.add_argument("--logs", type=Path, nargs="+", metavar="LOG",
                       help="score these eventsim logs instead (the table's rows for them: the "
                       "model trained on the dev log, the baselines, the bounds); no backtest "
                       "or simulated log")  # fmt: skip
    args = parser.parse_args(argv)
    if not (DATA / f"{DEV}.jsonl.gz").exists():
        raise SystemExit(f"the eventsim logs are not in {DATA}: nothing to benchmark")
    missing = [str(log) for log in args.logs or [] if not log.is_file()]
    if missing:
        raise SystemExit(
            f"expected eventsim log files for --logs. Got no file at {', '.join(missing)}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    if args.logs:
        with tempfile.TemporaryDirectory() as tmp:
            rows, info = transfer(Path(tmp), args.n_boot, args.logs)
        written = json.dumps({"rows": rows, **info}, indent=1, default=float)
        (args.out / "quality_logs.json").write_text(written)
        print(markdown(rows))
        return
    if args.matrix:
        with tempfile.TemporaryDirectory() as tmp:
            rows = matrix(Path(tmp), args.n_boot)
        (args.out / "quality_matrix.json").write_text(json.dumps(rows, indent=1, default=float))
        print(markdown(rows))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows, info = transfer(Path(tmp), args.n_boot, [DATA / f"{n}.jsonl.gz" for n in OTHERS])
        bt_rows, bt_seconds = backtest_500(Path(tmp), args.n_boot)
        sim = simulated(Path(tmp), args.n_boot)
    info.update({"train_500u_seconds": bt_seconds, "simulated": sim})
    (args.out / "quality.json").write_text(json.dumps({"rows": rows + bt_rows, **info},
                                                      indent=1, default=float))  # fmt: skip
    print(markdown(rows + bt_rows))
    print(json.dumps(info, indent=1, default=float))


if __name__ == "__main__":
    main()
