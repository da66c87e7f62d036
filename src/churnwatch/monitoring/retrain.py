"""`churnwatch retrain`: new data in, a challenger trained with the champion's recipe, a
promotion only when it is better on the same recent labelled cutoffs, out of time for both:
the challenger's backtest cutoffs on or after the day the champion's last learnt label ends.

The registry changes only at the very end, in one place: until then a failure at any step
(ingest, snapshots, training, evaluation) leaves the champion alias where it was.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd

from churnwatch import tracking
from churnwatch.config import Settings
from churnwatch.errors import ConfigError
from churnwatch.ingest.store import EventStore
from churnwatch.models.evaluate import label_overlaps
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
    challenger_version: str
    champion_score: float
    challenger_score: float
    window: str
    reason: str
    champion_metrics: dict[str, float] = field(default_factory=dict)
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    gain_se: float = float("nan")  # paired bootstrap standard error of the gain over users


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
    tracking.setup(settings)
    champion_ref = f"models:/{tracking.MODEL_NAME}@champion"
    champion = tracking.describe(champion_ref)
    champion_model = tracking.load(champion_ref).unwrap_python_model()
    recipe = tracking.read_recipe(champion)
    config = dataclasses.replace(TrainConfig.from_recipe(recipe, n_trials=n_trials), n_boot=n_boot)
    family = champion["params"].get("model")
    say(f"champion v{champion['version']} ({family}); training a challenger")
    summary = run_training(settings=settings, config=config, data=list(data), store_dir=store.root,
                           progress=say)  # fmt: skip
    result = summary.result
    rows = result.test_rows()
    # the champion is judged only where it is out of time too: on cutoffs whose horizon it never
    # learnt (on earlier ones it would be scored on labels it was fitted to)
    seen = learnt_until(champion)
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
        window=f"{window} ({len(rows)} users, {int(y.sum())} churners)", reason=reason,
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
    with tracking.run(f"retrain-v{decision.challenger_version}") as run_id:
        tracking.log_run(
            params={
                "metric": decision.metric, "margin": decision.margin,
                "champion_version": decision.champion_version,
                "challenger_version": decision.challenger_version, "window": decision.window,
                "promoted": decision.promoted, "reason": decision.reason,
            },
            metrics={**{f"{who}_{m}": v for who, ms in measured.items() for m, v in ms.items()},
                     "gain_se": decision.gain_se},
            tags={"churnwatch.kind": "retrain",
                  "decision": "promoted" if decision.promoted else "kept"},
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
