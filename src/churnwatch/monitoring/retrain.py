"""`churnwatch retrain`: new data in, a challenger trained with the champion's recipe, a
promotion only when it is better on the same recent labelled cutoffs, out of time for both:
the challenger's backtest cutoffs on or after the day the champion's last learnt label ends.

The registry changes only at the very end, in one place: until then a failure at any step
(ingest, snapshots, training, evaluation) leaves the champion alias where it was. When the
data cannot yet hold such a cutoff (its horizon has not passed), nothing is trained: the
decision says from which day a comparison is possible.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import httpx
import numpy as np
import pandas as pd

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.errors import ConfigError
from churnwatch.ingest.pipeline import ingest
from churnwatch.ingest.store import EventStore
from churnwatch.labels import ChurnDefinition
from churnwatch.models.evaluate import counted, label_overlaps
from churnwatch.models.metrics import SCORE_METRICS, user_resamples
from churnwatch.models.train import TrainConfig
from churnwatch.runs import learnt_until, run_training

log = logging.getLogger(__name__)
METRICS = ("pr_auc", "roc_auc", "lift_top10")


@dataclass
class Decision:
    promoted: bool
    metric: str
    margin: float
    champion_version: str
    challenger_version: str | None  # None: not trained, the data were too short to judge one
    champion_score: float
    challenger_score: float
    window: str
    reason: str
    champion_metrics: dict[str, float] = field(default_factory=dict)
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    gain_se: float = float("nan")  # paired bootstrap standard error of the gain over users
    # not trained: the first day the data can label a cutoff the champion never learnt from
    ready_on: date | None = None


def decide(champion: float, challenger: float, *, metric: str, margin: float) -> tuple[bool, str]:
    """Promote when the challenger beats the champion by at least `margin` on `metric`."""
    if not np.isfinite(challenger):
        return False, f"the challenger's {metric} is undefined on the window"
    if not np.isfinite(champion):
        return True, f"the champion's {metric} is undefined; the challenger's is {challenger:.4f}"
    gain = challenger - champion
    verdict = "promoted" if gain >= margin else "kept as challenger"
    return gain >= margin, (
        f"{verdict}: challenger {metric} {challenger:.4f} vs champion {champion:.4f} "
        f"(gain {gain:+.4f}, margin {margin:+.4f})"
    )


def retrain(
    settings: Settings,
    *,
    data: Sequence[str] = (),
    metric: str | None = None,
    margin: float | None = None,
    n_trials: int = 0,
    n_boot: int = 200,
    progress: Callable[[str], None] | None = None,
) -> Decision:
    """Train a challenger with the champion's recipe on what the store holds (after
    ingesting `data`), compare both out of time on the challenger's backtest cutoffs that the
    champion never learnt the labels of, and promote the challenger only when it wins by
    `margin` on `metric` there."""
    say = progress or (lambda _m: None)
    metric = metric or settings.promote_metric
    margin = settings.promote_margin if margin is None else margin
    if metric not in METRICS:
        raise ConfigError(f"metric has to be one of {', '.join(METRICS)}. Got {metric!r}.")
    store = EventStore(settings.store_path)
    if not data:  # nothing to ingest into a new store: say so before opening the registry
        store.require()
    tracking.setup(settings)
    champion_ref = f"models:/{tracking.MODEL_NAME}@champion"
    champion = tracking.describe(champion_ref)
    champion_model = tracking.load(champion_ref).unwrap_python_model()
    recipe = tracking.read_recipe(champion)
    config = dataclasses.replace(TrainConfig.from_recipe(recipe, n_trials=n_trials), n_boot=n_boot)
    family = champion["params"].get("model")
    seen = learnt_until(champion)
    if data:
        say("ingesting")  # the new logs come from the same feed: read as the last ones were
        ingest(list(data), settings=settings, store_dir=store.root, mapping=store.mapping())
    ready = None if seen is None else comparable_from(seen, config, store.first_event())
    last = _utc(store.last_event())
    if seen is not None and ready is not None and last < ready:
        return _not_yet(champion, seen, ready, config.definition, last, metric, margin)
    say(f"champion v{champion['version']} ({family}); training a challenger")
    summary = run_training(settings=settings, config=config, data=list(data), store_dir=store.root,
                           progress=say, ingested=True)  # fmt: skip
    result = summary.result
    rows = result.test_rows()
    # the champion is judged only where it is out of time too: on cutoffs whose horizon it never
    # learnt (on earlier ones it would be scored on labels it was fitted to)
    unseen = ~label_overlaps(rows["cutoff"], seen)
    rows, challenger_p = rows[unseen], np.asarray(result.test_probability)[unseen]
    y = rows["label"].to_numpy(dtype=int)
    cutoffs = sorted(set(pd.to_datetime(rows["cutoff"]).dt.date))
    window = ", ".join(str(c) for c in cutoffs) or "none"
    if len(y) and len(np.unique(y)) == 2:
        scores = {"champion": np.asarray(champion_model.predict(None, rows), dtype=float),
                  "challenger": challenger_p}  # fmt: skip
        measured = {who: {m: float(SCORE_METRICS[m](y, p)) for m in (*METRICS, "brier")}
                    for who, p in scores.items()}  # fmt: skip
        promoted, reason = decide(measured["champion"][metric], measured["challenger"][metric],
                                  metric=metric, margin=margin)  # fmt: skip
        se = paired_se(y, scores["champion"], scores["challenger"], rows["user_id"].to_numpy(),
                       metric=metric, n_boot=n_boot)  # fmt: skip
        gain = measured["challenger"][metric] - measured["champion"][metric]
        reason += (f"; paired standard error of the gain {se:.4f} over users: "
                   + ("inside the noise" if abs(gain) <= se else "beyond the noise"))  # fmt: skip
    else:
        se = float("nan")
        nan = {m: float("nan") for m in (*METRICS, "brier")}
        measured = {"champion": nan, "challenger": dict(nan)}
        promoted = False
        reason = (
            f"kept as challenger: champion v{champion['version']} learnt every label up to "
            f"{seen}, and no backtest cutoff from then on has both churners and non-churners "
            f"(window: {window}); nothing to compare the two on out of time. Retrain once the "
            "new data covers a horizon past that day."
        )
    decision = Decision(
        promoted=promoted, metric=metric, margin=margin,
        champion_version=champion["version"], challenger_version=summary.model_version,
        champion_score=measured["champion"][metric],
        challenger_score=measured["challenger"][metric],
        window=f"{window} ({counted(rows)})", reason=reason,
        champion_metrics=measured["champion"], challenger_metrics=measured["challenger"],
        gain_se=se,
    )  # fmt: skip
    decision.run_id = _log(decision, measured)
    # the one place the registry changes
    if promoted:
        tracking.set_aliases({
            "previous": champion["version"], "champion": summary.model_version, "challenger": None,
        })  # fmt: skip
    else:
        tracking.set_aliases({"challenger": summary.model_version})
    return decision  # its reason is the caller's to say (the CLI prints it once)


def comparable_from(seen: date, config: TrainConfig, first_event: Any) -> pd.Timestamp | None:
    """The earliest time the data have to reach before a challenger trained with `config` can
    be judged against a champion whose learnt labels end on `seen`: the challenger's first
    evaluation cutoff on or after `seen` (out of time for the champion; the schedule runs from
    the data's first event) is labelled once the `lookahead_days` after it are in the data.
    None: the schedule has no cutoff from `seen` on."""
    cutoff = config.schedule.first_on_or_after(_utc(first_event).to_pydatetime(), seen)
    if cutoff is None:
        return None
    return pd.Timestamp(cutoff, tz="UTC") + pd.Timedelta(days=config.definition.lookahead_days)


def _utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _not_yet(
    champion: dict[str, Any],
    seen: date,
    ready: pd.Timestamp,
    definition: ChurnDefinition,
    last: pd.Timestamp,
    metric: str,
    margin: float,
) -> Decision:
    """The decision not to train: no cutoff the champion is out of time on can be labelled yet
    (the data end at `last`), so no challenger could be judged against it. Logged as a retrain
    run, registry untouched."""
    first = (ready - pd.Timedelta(days=definition.lookahead_days)).date()
    reason = (
        f"not retrained: champion v{champion['version']} learnt every label up to {seen}, so a "
        f"challenger can only be judged on cutoffs from that day on (the first is {first}), and "
        f"a cutoff is labelled once the {definition.lookahead_days} days after it (its "
        f"{definition.lookahead_words}) are in the data. The data end {last:%Y-%m-%d %H:%M}; "
        f"retrain once they reach {ready.date()}."
    )
    nan = {m: float("nan") for m in (*METRICS, "brier")}
    decision = Decision(
        promoted=False, metric=metric, margin=margin, champion_version=champion["version"],
        challenger_version=None, champion_score=float("nan"), challenger_score=float("nan"),
        window="none (no labelled snapshots)", reason=reason, champion_metrics=nan,
        challenger_metrics=dict(nan), ready_on=ready.date(),
    )  # fmt: skip
    decision.run_id = _log(decision, {"champion": nan, "challenger": nan})
    return decision


def paired_se(
    y: np.ndarray, a: np.ndarray, b: np.ndarray, users: np.ndarray, *, metric: str, n_boot: int
) -> float:
    """The standard error of metric(b) - metric(a) on the same rows, by a bootstrap over users
    (both scored on each draw): how large a gain the window's size makes noise of."""
    fn = SCORE_METRICS[metric]
    diffs = [fn(y[i], b[i]) - fn(y[i], a[i])
             for i in user_resamples(users, n_boot=max(n_boot, 50), seed=0)]  # fmt: skip
    finite = np.asarray(diffs, dtype=float)
    finite = finite[np.isfinite(finite)]
    return float(finite.std(ddof=1)) if len(finite) > 1 else float("nan")


def _log(decision: Decision, measured: dict[str, dict[str, float]]) -> str:
    """The decision as an MLflow run; its id."""
    trained = decision.challenger_version is not None
    name = f"retrain-v{decision.challenger_version}" if trained else "retrain-not-yet"
    with tracking.run(name) as run_id:
        tracking.log_run(
            params={
                "metric": decision.metric, "margin": decision.margin,
                "champion_version": decision.champion_version,
                "challenger_version": decision.challenger_version, "window": decision.window,
                "promoted": decision.promoted, "reason": decision.reason,
                **({"ready_on": decision.ready_on.isoformat()} if decision.ready_on else {}),
            },
            metrics={**{f"{who}_{m}": v for who, ms in measured.items() for m, v in ms.items()},
                     "gain_se": decision.gain_se},
            tags={"churnwatch.kind": "retrain",
                  "decision": ("promoted" if decision.promoted else "kept") if trained
                  else "not retrained"},
            artifacts=[],
        )  # fmt: skip
    return run_id


def notify(url: str, api_key: str | None) -> dict[str, Any]:
    """Ask a running API to reload its champion (POST /admin/reload)."""

    headers = {"X-API-Key": api_key} if api_key else {}
    r = httpx.post(url.rstrip("/") + "/admin/reload", headers=headers, timeout=300)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def decision_table(decision: Decision) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": f"champion v{decision.champion_version}", **decision.champion_metrics},
            {"model": f"challenger v{decision.challenger_version}", **decision.challenger_metrics},
        ]
    )
