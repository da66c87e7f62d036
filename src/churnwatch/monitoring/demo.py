"""The drift demo: a service whose app release doubles adverts for free users and triples
errors, watched week by week, retrained when alerts fire.

`churnwatch demo` (or `make drift-demo`): simulate a log with a drift day, ingest its
first weeks, train a champion, then each week ingest the new week, run `monitor` as of its
end, and when a drift or performance alert is raised run `retrain` (promotion only if the
challenger is better). Writes a summary table (Markdown) and an HTML report with the plots and
Evidently's report of the first week that drifted.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnwatch.config import Settings
from churnwatch.errors import InputError
from churnwatch.features.build import build_snapshots
from churnwatch.ingest.pipeline import ingest
from churnwatch.ingest.store import EventStore
from churnwatch.labels import CutoffSchedule
from churnwatch.models.train import TrainConfig
from churnwatch.monitoring.monitor import monitor
from churnwatch.monitoring.retrain import retrain
from churnwatch.plotting import plt
from churnwatch.runs import run_training
from churnwatch.simulate import SimConfig, simulate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    users: int = 600
    days: int = 119
    drift_day: int = 77
    first_days: int = 63
    seed: int = 7
    model: str = "lightgbm"


def _split(
    log_path: Path, out: Path, start: datetime, cfg: DemoConfig
) -> list[tuple[Path, datetime]]:
    """Cut the simulated log into the first weeks and then one file per week."""
    table = pq.read_table(log_path)
    ts = table["ts"]
    edges = [cfg.first_days, *range(cfg.first_days + 7, cfg.days + 1, 7)]
    chunks = []
    lo = None
    for day in edges:
        hi = start + timedelta(days=day)
        mask = pc.less(ts, pa_scalar(hi, ts))
        if lo is not None:
            mask = pc.and_(mask, pc.greater_equal(ts, pa_scalar(lo, ts)))
        path = out / f"events_to_day_{day:03d}.parquet"
        pq.write_table(table.filter(mask), path)
        chunks.append((path, hi))
        lo = hi
    return chunks


def pa_scalar(when: datetime, like: Any) -> Any:
    if pa.types.is_integer(like.type):  # Sparkify's epoch milliseconds
        return pa.scalar(int(when.timestamp() * 1000), type=like.type)
    return pa.scalar(when, type=pa.timestamp("ms", tz="UTC"))


MARKER = ".churnwatch-drift-demo"


def _fresh(out: Path) -> None:
    """Make `out` an empty folder of the demo's own. A non-empty folder is refused unless a
    previous demo made it (it holds MARKER): the demo never deletes what it did not create."""
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).is_file():
            raise InputError(
                f"expected --out to be a new or empty folder, or one a previous drift demo "
                f"made. Got {out}, which holds other files: choose another folder."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("made by `churnwatch demo`; it may delete this folder\n")


def drift_demo(
    out: Path, cfg: DemoConfig | None = None, progress: Callable[[str], None] | None = None
) -> pd.DataFrame:
    cfg = cfg or DemoConfig()
    say = progress or (lambda _m: None)
    _fresh(out)
    (out / "chunks").mkdir(parents=True)
    sim = SimConfig(users=cfg.users, days=cfg.days, seed=cfg.seed, drift_day=cfg.drift_day)
    log_path = out / "sparkify_drift.parquet"
    say(f"simulating {cfg.users} users for {cfg.days} days, drift from day {cfg.drift_day}")
    simulate(sim, log_path)
    start = datetime(sim.start.year, sim.start.month, sim.start.day, tzinfo=UTC)
    drift_at = start + timedelta(days=cfg.drift_day)
    chunks = _split(log_path, out / "chunks", start, cfg)
    settings = Settings(data_dir=out / "data", alert_cooldown_hours=24 * 6)
    first, first_end = chunks[0]
    say(f"training the champion on the first {cfg.first_days} days")
    run_training(settings=settings, config=TrainConfig(models=(cfg.model,), n_boot=50),
                 data=[str(first)])  # fmt: skip
    rows: list[dict[str, Any]] = []
    first_drift_report = None
    for path, end in chunks[1:]:
        ingest([path], settings=settings)
        report = monitor(settings, as_of=end)
        kinds = sorted({a["kind"] for a in report.alerts})
        r = report.latest_realised
        row: dict[str, Any] = {
            "week ending": f"{end:%Y-%m-%d}",
            "after drift": end > drift_at,
            "champion": f"v{report.model_version}",
            "drift share": report.drift["share_drifted"],
            "prediction PSI": report.drift["prediction_psi"],
            "matured cohort": str(r.get("cutoff", ""))[:10],
            "cohort model": f"v{r['model_version']}" if r else "",
            "realised ROC-AUC": r.get("roc_auc"),
            "realised PR-AUC": r.get("pr_auc"),
            "alerts": ", ".join(k for k in kinds if k != "user_risk") or "-",
            "user alerts": sum(a["kind"] == "user_risk" for a in report.alerts),
            "retrain": "-",
        }
        if "drift" in kinds and first_drift_report is None:
            first_drift_report = report.html
        if {"drift", "performance_drop"} & set(kinds):
            say(f"{end:%Y-%m-%d}: alerts {kinds}: calling retrain")
            d = retrain(settings, n_boot=50)
            verdict = "promoted" if d.promoted else "kept"
            row["retrain"] = (
                f"not retrained (nothing to judge a challenger on until the data reach "
                f"{d.ready_on})"
                if d.challenger_version is None
                else f"v{d.challenger_version} {verdict} ({d.metric} {d.challenger_score:.3f} vs "
                f"{d.champion_score:.3f}, gain's se {d.gain_se:.3f}, on {d.window.split(' (')[0]})"
                if np.isfinite(d.champion_score)
                else f"v{d.challenger_version} {verdict} (no cutoff yet past the champion's labels)"
            )
        say(json.dumps({k: v for k, v in row.items() if k != "after drift"}, default=str))
        rows.append(row)
    table = pd.DataFrame(rows)
    write_report(out, table, first_drift_report, cfg)
    return table


def markdown(table: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "-" if pd.isna(v) else f"{v:.3f}"
        return str(v)

    cols = [c for c in table.columns if c != "after drift"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for _, r in table.iterrows()]
    return "\n".join(lines) + "\n"


def write_report(out: Path, table: pd.DataFrame, drift_html: str | None, cfg: DemoConfig) -> None:
    (out / "summary.md").write_text(markdown(table))
    table.to_csv(out / "summary.csv", index=False)
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    drift_day = pd.Timestamp(2018, 10, 1) + pd.Timedelta(days=cfg.drift_day)
    x = pd.to_datetime(table["week ending"])
    axes[0].plot(x, table["drift share"], "o-", label="share of features drifted")
    axes[0].plot(x, table["prediction PSI"], "s--", label="prediction PSI")
    axes[0].axhline(Settings().alert_drift_share, color="grey", ls=":", label="alert threshold")
    axes[0].set_title("Drift, by monitoring week")
    cohorts = table[table["matured cohort"].astype(str) != ""]
    for version, g in cohorts.groupby("cohort model"):
        axes[1].plot(pd.to_datetime(g["matured cohort"]), g["realised ROC-AUC"].astype(float),
                     "o-", label=f"cohorts scored by {version}")  # fmt: skip
    axes[1].set_title("Realised ROC-AUC, by cohort (cutoff)")
    for ax in axes:
        ax.axvline(drift_day, color="red", alpha=0.4, label="app release (drift)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "drift_demo.png", dpi=110)
    plt.close(fig)
    link = (f'<p><a href="{Path(drift_html).relative_to(out)}">Evidently report of the first '
            "week that drifted</a></p>") if drift_html else ""  # fmt: skip
    (out / "report.html").write_text(
        "<html><head><meta charset='utf-8'><title>churnwatch drift demo</title></head><body>"
        f"<h1>churnwatch drift demo</h1><p>{cfg.users} simulated users, {cfg.days} days; from "
        f"day {cfg.drift_day} adverts double for free users and errors triple.</p>"
        f"<img src='drift_demo.png' style='max-width:100%'>{link}"
        + table.to_html(index=False, float_format=lambda v: f"{v:.3f}")
        + "</body></html>"
    )


def drift_windows(
    root: Path, *, seed: int, drift_day: int | None, users: int = 500, days: int = 84
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The drift-alarm scenario (`python -m bench.drift_alarms` and its test): a simulated
    log, with the app release from `drift_day` or without it (the same seed gives the same
    log until then); returns the reference window (snapshots of days 35 and 42) and the
    current one (day 70), with a random score column, as no model is needed."""

    cfg = SimConfig(users=users, days=days, seed=seed, drift_day=drift_day)
    log = root / f"log_{seed}_{drift_day}.parquet"
    simulate(cfg, log)
    store = root / f"store_{seed}_{drift_day}"
    ingest([log], settings=Settings(data_dir=root), store_dir=store)
    start = date(cfg.start.year, cfg.start.month, cfg.start.day)
    cutoffs = tuple(start + timedelta(days=d) for d in (35, 42, 70))
    table, _ = build_snapshots(EventStore(store), schedule=CutoffSchedule(explicit=cutoffs))
    df = table.to_pandas()
    df["score"] = np.random.default_rng(0).random(len(df))
    cut = df["cutoff"].dt.date
    return df[cut < cutoffs[2]], df[cut == cutoffs[2]]
