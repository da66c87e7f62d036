"""Train: dense snapshots -> rolling-origin backtest -> choice -> refit on everything labelled.

1. Snapshots are built with a cutoff every `train_every_days` (default: every day) for
   training, each row weighted so that a user counts once per evaluation period; the
   evaluation schedule (weekly by default) picks the cutoffs that are scored.
2. Every candidate, baselines included, is fitted on each backtest fold's past and scored on
   its cutoff (`churnwatch.models.backtest`). The choice is the one-standard-error rule on the
   mean per-fold ROC-AUC: a more complex candidate has to win by more than the noise.
3. The chosen recipe is refitted on every labelled cutoff, calibration included (Platt
   scaling on out-of-fold scores grouped by user). The reported test figures are the backtest's
   out-of-time figures, never the refitted model's in-sample ones.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from churnwatch.errors import InputError
from churnwatch.features import build_snapshots
from churnwatch.features.build import CatalogChoice, spec_for
from churnwatch.features.catalog import FeatureSpec, feature_names
from churnwatch.ingest.store import EventStore
from churnwatch.labels import ChurnDefinition, CutoffSchedule, unlearnable
from churnwatch.models.backtest import (
    Backtest,
    Choice,
    one_standard_error,
    rolling_folds,
    run_backtest,
)
from churnwatch.models.calibration import Calibrated, calibrate
from churnwatch.models.effects import fold_effects, stable_features
from churnwatch.models.estimators import (
    ALL_MODELS,
    BASELINES,
    MODELS,
    NEVER_CHOSEN,
    PATHS,
    default_models,
    fit_model,
)
from churnwatch.models.metrics import RANKING, Estimate, evaluate_scores
from churnwatch.models.tune import tune
from churnwatch.recipe import Recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    definition: ChurnDefinition = ChurnDefinition()
    schedule: CutoffSchedule = CutoffSchedule()  # the evaluation schedule (weekly)
    train_every_days: int = 1  # training cutoffs: denser than the evaluation schedule
    models: tuple[str, ...] = MODELS
    threshold_rule: str = "f1"  # "f1", "capacity:0.05" (top 5 %), "cost:5" (FN costs 5 FP)
    seed: int = 0
    n_boot: int = 300
    backtest_folds: int = 6  # the last k evaluated cutoffs with enough history
    n_trials: int = 0  # Optuna trials per learnt model on the backtest folds (0: defaults)
    budget_seconds: float = 0.0  # a cap on tuning time (0: none); the trial count decides
    features: FeatureSpec | None = None  # the catalog; None: chosen from the store by `catalog`
    catalog: CatalogChoice = "auto"  # auto (song plays: eventsim), sparkify or events
    event_types: int = 20  # with an `events` catalog chosen from the store: at most this many
    row_budget: int = 400_000  # dense training cutoffs are thinned to about this many rows

    @classmethod
    def from_recipe(cls, recipe: Recipe, *, n_trials: int = 0) -> TrainConfig:
        """The recipe a model was trained with, to train its challenger the same way (its
        model family, re-tuned when `n_trials` > 0)."""
        if not recipe.model:
            raise InputError("expected the recipe to name its model. Got none.")
        return cls(
            definition=recipe.definition,
            schedule=recipe.schedule,
            train_every_days=recipe.train_every_days,
            models=(recipe.model,),
            threshold_rule=recipe.threshold_rule,
            seed=recipe.seed,
            n_trials=n_trials,
            features=recipe.spec,
        )

    def __post_init__(self) -> None:
        threshold_rule(self.threshold_rule)  # before hours of training, not after
        unknown = [m for m in self.models if m not in ALL_MODELS]
        if unknown or not self.models:
            raise InputError(
                f"models have to be among {', '.join(ALL_MODELS)}. Got {list(self.models)}."
            )


@dataclass
class Candidate:
    name: str  # the model (make_model's name)
    estimator: Any  # the final, calibrated model (the chosen one only)
    test: dict[str, Estimate] = field(default_factory=dict)  # pooled backtest, out of time
    per_fold: list[dict[str, Any]] = field(default_factory=list)
    mean_roc_auc: float = float("nan")
    calibration: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    tuning: str = "not tuned"
    label: str = ""  # the model and its point on a regularisation path ("logistic C=0.1")

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    @property
    def key(self) -> str:
        """The label as an MLflow metric-name prefix (no '=')."""
        return self.label.replace(" ", "_").replace("=", "_")


@dataclass
class TrainResult:
    backtest: Backtest
    choice: Choice
    candidates: list[Candidate]
    chosen: Candidate
    threshold: float
    features: list[str]
    snapshots: pd.DataFrame  # every snapshot (dense cutoffs), censored ones included
    test_frame: pd.DataFrame  # the backtest's evaluated rows, in the order of backtest.rows
    test_probability: np.ndarray  # the chosen recipe's calibrated out-of-time probabilities
    fit_cutoffs: tuple[date, ...]  # what the final model learnt from
    base_rate_brier: float
    horizon_days: int = 14
    spec: FeatureSpec = FeatureSpec()
    seconds: float = 0.0
    # features whose effect kept its sign in every backtest fold: the ones given as reasons
    reason_features: list[str] = field(default_factory=list)

    def test_rows(self) -> pd.DataFrame:
        """The backtest's evaluated snapshots (out of time for every fold's model)."""
        return self.test_frame

    def describe(self) -> str:
        cuts = [f.cutoff for f in self.backtest.folds]
        fit = self.fit_cutoffs
        return (
            f"backtest {len(cuts)} folds, cutoffs {cuts[0]}..{cuts[-1]}; final model fitted on "
            f"{len(fit)} labelled cutoffs {fit[0]}..{fit[-1]}"
        )


def out_of_fold(
    name: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    w: np.ndarray,
    *,
    seed: int,
    folds: int = 3,
) -> np.ndarray:
    """Scores for the rows from models that did not see their user (grouped K-fold): the
    calibration set, without looking past the rows' own period."""
    users = X["user_id"].to_numpy()
    k = min(folds, len(np.unique(users)))
    out = np.zeros(len(X))
    for fit, held in GroupKFold(n_splits=k).split(X, y, users):
        model = fit_model(name, params, X.iloc[fit], y[fit], w[fit], seed=seed)
        out[held] = model.predict_proba(X.iloc[held])[:, 1]
    return out


def fit_calibrated(
    name: str, params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, w: np.ndarray, *, seed: int
) -> tuple[Calibrated, str]:
    """The recipe fitted on every row, with a calibrator fitted on its out-of-fold scores."""
    est = fit_model(name, params, X, y, w, seed=seed)
    if len(np.unique(X["user_id"])) < 4 or int(y.sum()) < 4:
        raw = est.predict_proba(X)[:, 1]
        return Calibrated(est, "sigmoid").fit_scores(raw, y), "sigmoid (in-sample: few users)"
    oof = out_of_fold(name, params, X, y, w, seed=seed)
    return calibrate(est, oof, y), "sigmoid"


THRESHOLD_RULES = "'f1', 'capacity:SHARE' (0 < SHARE <= 1) or 'cost:RATIO' (RATIO > 0)"


def threshold_rule(rule: str) -> tuple[str, float]:
    """A threshold rule's kind and number: ('f1', 0), ('capacity', 0.05), ('cost', 5)."""
    kind, colon, value = rule.partition(":")
    defaults = {"f1": None, "capacity": 0.05, "cost": 5.0}
    if kind not in defaults or (kind == "f1" and colon):
        raise InputError(f"threshold rule has to be {THRESHOLD_RULES}. Got {rule!r}.")
    if kind == "f1":
        return kind, 0.0
    try:
        number = float(value) if value else defaults[kind]
    except ValueError:
        number = None
    top = 1.0 if kind == "capacity" else math.inf
    if number is None or not 0 < number <= top or not math.isfinite(number):
        raise InputError(f"threshold rule has to be {THRESHOLD_RULES}. Got {rule!r}.")
    return kind, number


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: str) -> float:
    """A decision threshold by a stated rule, on validation scores."""
    kind, number = threshold_rule(rule)
    if kind == "capacity":
        return float(np.quantile(p, 1 - number))
    # every distinct score as a threshold, counted in one sorted pass
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last = np.r_[ps[1:] != ps[:-1], True]  # the last row of each run of equal scores
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(1 - ys)[last]
    thresholds = ps[last]
    fn = ys.sum() - tp
    if kind == "cost":
        return float(thresholds[int(np.argmin(number * fn + fp))])
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    return float(thresholds[int(np.argmax(f1))])


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    out = df[df["label"].notna()].copy()
    out["label"] = out["label"].astype(int)
    return out.reset_index(drop=True)


def evaluation_cutoffs(cutoffs: list[date], schedule: CutoffSchedule) -> list[date]:
    """The cutoffs of the evaluation schedule among the (denser) training cutoffs."""
    if schedule.explicit:
        return sorted(set(cutoffs) & set(schedule.explicit))
    first = min(cutoffs)
    return sorted(c for c in set(cutoffs) if (c - first).days % schedule.every_days == 0)


def train(
    store: EventStore,
    config: TrainConfig,
    *,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Build snapshots from `store`, backtest every candidate, choose one, refit it."""
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    spec = config.features or spec_for(
        store, config.definition, config.schedule, features=config.catalog,
        event_types=config.event_types,
    )  # fmt: skip
    models = (default_models(spec.kind, config.definition.kind) if config.models == MODELS
              else config.models)  # fmt: skip
    config = replace(config, features=spec, models=models)
    say(f"building snapshots ({spec.describe()})")
    df, data, weight = _training_rows(store, config)
    evals = evaluation_cutoffs(sorted(data["cutoff_date"].unique()), config.schedule)
    folds = rolling_folds(data, evals, config.definition.horizon_days, last=config.backtest_folds)
    variants = _variants(config, data, folds, weight, say)
    fitters = {
        v.label: (lambda X, y, w, v=v: fit_model(v.name, v.params, X, y, w, seed=config.seed))
        for v in variants
    }
    bt = run_backtest(data, folds, fitters, weight=weight, progress=say)
    eligible = [v.label for v in variants if v.name not in NEVER_CHOSEN]
    choice = one_standard_error(bt, eligible, seed=config.seed)
    say(choice.rule)
    pick = next(v for v in variants if v.label == choice.name)
    test_frame, prob, base, stable = _calibrated_backtest(data, weight, folds, pick, config)
    y_te = bt.y
    threshold = choose_threshold(y_te, prob, config.threshold_rule)
    _report_candidates(variants, pick, bt, prob, threshold, config)
    say(f"refitting {pick.label} on every labelled cutoff")
    pick.estimator, pick.calibration = fit_calibrated(
        pick.name, pick.params, data, data["label"].to_numpy(), weight, seed=config.seed
    )
    return TrainResult(
        backtest=bt,
        choice=choice,
        candidates=variants,
        chosen=pick,
        threshold=threshold,
        features=feature_names(spec),
        spec=spec,
        snapshots=df,
        test_frame=test_frame,
        test_probability=prob,
        fit_cutoffs=tuple(sorted(data["cutoff_date"].unique())),
        base_rate_brier=base,
        horizon_days=config.definition.horizon_days,
        seconds=time.perf_counter() - started,
        reason_features=stable,
    )


def _training_rows(
    store: EventStore, config: TrainConfig
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Every snapshot at the dense training cutoffs, the labelled ones, and their weights (a
    user counts once per evaluation period)."""
    sched = config.schedule
    step = _dense_step(store, config)
    dense = CutoffSchedule(
        every_days=step, min_history_days=sched.min_history_days, explicit=sched.explicit
    )
    table, _ = build_snapshots(
        store, definition=config.definition, schedule=dense, spec=config.features
    )
    df = table.to_pandas()
    df["cutoff_date"] = df["cutoff"].dt.date
    data = _labelled(df)
    why = unlearnable(
        df["cutoff"], df["label"], config.definition, store.last_event(), store.holds_page
    )
    if why:
        raise InputError(why)
    weight = np.full(len(data), dense.every_days / sched.every_days, dtype=float)
    return df, data, weight


def _dense_step(store: EventStore, config: TrainConfig) -> int:
    """Days between training cutoffs: `train_every_days`, coarsened for a large log so that
    about `row_budget` snapshots are built (users times cutoffs), never coarser than the
    evaluation schedule (a divisor of it)."""
    every = config.schedule.every_days
    step = min(config.train_every_days, every)
    users = store.users()  # distinct: the same users come back in every weekly ingest
    if not users:
        return step
    days = max((store.last_event() - store.first_event()).days, 1)
    while step < every and users * days / step > config.row_budget:
        step += 1
        while every % step:  # the evaluation cutoffs stay among the training ones
            step += 1
    return step


def _report_candidates(
    variants: list[Candidate],
    pick: Candidate,
    bt: Backtest,
    prob: np.ndarray,
    threshold: float,
    config: TrainConfig,
) -> None:
    """Each candidate's pooled backtest figures with intervals (the chosen one's from its
    calibrated probabilities), per fold, and its mean fold ROC-AUC."""
    users = bt.rows["user_id"].to_numpy()
    for v in variants:
        chosen = v is pick
        est = evaluate_scores(
            bt.y, prob if chosen else bt.scores[v.label], users, threshold=threshold,
            ranking=bt.scores[v.label], n_boot=config.n_boot, seed=config.seed,
        )  # fmt: skip
        if not chosen:  # raw scores of class-weighted models are not probabilities
            est = {k: val for k, val in est.items() if k in RANKING}
        v.test, v.per_fold, v.mean_roc_auc = est, bt.per_fold(v.label), bt.mean_auc(v.label)


def _variants(
    config: TrainConfig,
    data: pd.DataFrame,
    folds: list[Any],
    weight: np.ndarray,
    say: Callable[[str], None],
) -> list[Candidate]:
    """The backtest's candidates, in the choice's order: every model of `config.models`; a
    model with a regularisation path contributes one candidate per point (strongest first),
    unless it is tuned by Optuna trials."""
    out = []
    for name in config.models:
        if name not in BASELINES and config.n_trials > 0:
            say(f"tuning {name}")
            params, how = tune(
                name, data, folds, weight, n_trials=config.n_trials,
                timeout=config.budget_seconds or None, seed=config.seed,
            )  # fmt: skip
            out.append(Candidate(name, None, params=params, tuning=how))
        elif name in PATHS:
            key, values = PATHS[name]
            how = f"{key} chosen on the backtest among {', '.join(map(str, values))}"
            out += [
                Candidate(name, None, params={key: v}, tuning=how, label=f"{name} {key}={v}")
                for v in values
            ]
        else:
            out.append(Candidate(name, None))
    return out


def _calibrated_backtest(
    data: pd.DataFrame,
    weight: np.ndarray,
    folds: list[Any],
    pick: Candidate,
    config: TrainConfig,
) -> tuple[pd.DataFrame, np.ndarray, float, list[str]]:
    """The chosen recipe, calibration included, refitted on each fold's past: its calibrated
    out-of-time probabilities on the evaluated rows, the base-rate Brier score (each fold's
    training churn rate as the forecast), and the features whose effect is stable across the
    folds (`churnwatch.models.effects`)."""
    cuts = np.asarray(data["cutoff_date"])
    y = data["label"].to_numpy()
    frames, probs, base_sq, effects = [], [], [], []
    for fold in folds:
        fit, ev = np.isin(cuts, fold.fit), cuts == fold.cutoff
        cal, _ = fit_calibrated(
            pick.name, pick.params, data[fit], y[fit], weight[fit], seed=config.seed
        )
        frames.append(data[ev])
        probs.append(cal.predict_proba(data[ev])[:, 1])
        effects.append(fold_effects(cal, data[ev], seed=config.seed))
        rate = float(np.average(y[fit], weights=weight[fit]))
        base_sq.append((y[ev] - rate) ** 2)
    return (
        pd.concat(frames, ignore_index=True),
        np.concatenate(probs),
        float(np.mean(np.concatenate(base_sq))),
        stable_features(effects),
    )
