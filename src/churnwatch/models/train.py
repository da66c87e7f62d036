"""Train: snapshots -> out-of-time split -> candidates -> calibration -> threshold -> test.

Model selection is on validation PR-AUC (the classes are imbalanced), ROC-AUC beside it,
among the learnt models; the baselines (the seed's random forest, the heuristic) are reported
for comparison but never chosen.
Every candidate is calibrated the same way (see `calibrate`): on out-of-fold scores of the
training rows (grouped by user) together with the validation rows, so that the calibrator sees
several times more churners than one validation cutoff holds. The test set is touched once, at
the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GroupKFold

from churnwatch.errors import InputError
from churnwatch.features import build_snapshots
from churnwatch.features.catalog import feature_names
from churnwatch.ingest.store import EventStore
from churnwatch.labels import ChurnDefinition, CutoffSchedule
from churnwatch.models.estimators import BASELINES, MODELS, make_model
from churnwatch.models.metrics import SCORE_METRICS, Estimate, evaluate_scores
from churnwatch.models.split import TimeSplit, out_of_time_split
from churnwatch.models.tune import tune

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    definition: ChurnDefinition = ChurnDefinition()
    schedule: CutoffSchedule = CutoffSchedule()
    models: tuple[str, ...] = MODELS
    threshold_rule: str = "f1"  # "f1", "capacity:0.05" (top 5 %), "cost:5" (FN costs 5 FP)
    seed: int = 0
    n_boot: int = 300
    budget_seconds: float = 60.0  # Optuna time budget, shared by the learnt models


@dataclass
class Candidate:
    name: str
    estimator: Any
    validation: dict[str, float]
    test: dict[str, Estimate] = field(default_factory=dict)
    calibration: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    tuning: str = "not tuned"


@dataclass
class TrainResult:
    split: TimeSplit
    candidates: list[Candidate]
    chosen: Candidate
    threshold: float
    features: list[str]
    snapshots: pd.DataFrame
    base_rate_brier: float
    horizon_days: int = 14
    seconds: float = 0.0

    def test_rows(self) -> pd.DataFrame:
        """The labelled snapshots of the test cutoffs."""
        s = self.snapshots
        return s[s["cutoff_date"].isin(self.split.test) & s["label"].notna()]


class Calibrated(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A fitted classifier whose scores are mapped to probabilities by a calibrator fitted on
    other rows: Platt scaling on the log-odds (`sigmoid`) or isotonic regression."""

    def __init__(self, estimator: Any = None, method: str = "sigmoid") -> None:
        self.estimator = estimator
        self.method = method

    def fit(self, X: pd.DataFrame, y: np.ndarray) -> Calibrated:
        return self.fit_scores(self._raw(X), y)

    def fit_scores(self, s: np.ndarray, y: np.ndarray) -> Calibrated:
        """Fit the calibrator on raw scores `s` of the estimator (e.g. out-of-fold ones)."""
        self.constant_: float | None = None
        if self.method == "sigmoid":
            self.calibrator_: Any = LogisticRegression(C=1e6).fit(logit(s)[:, None], y)
            if self.calibrator_.coef_[0, 0] <= 0:  # scores carry no usable signal here
                self.constant_ = float(np.mean(y))
        elif self.method == "isotonic":
            self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1)
            self.calibrator_.fit(s, y)
        else:
            raise InputError(f"method has to be one of 'sigmoid', 'isotonic'. Got {self.method!r}.")
        self.classes_ = np.array([0, 1])
        return self

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(X)[:, 1], dtype=float)

    def predict_scores(self, s: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw scores `s`."""
        if self.constant_ is not None:
            return np.full(len(s), self.constant_)
        if self.method == "sigmoid":
            p = self.calibrator_.predict_proba(logit(s)[:, None])[:, 1]
        else:
            p = self.calibrator_.predict(s)
        return np.asarray(p, dtype=float)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.predict_scores(self._raw(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds, with p clipped to [1e-6, 1 - 1e-6]: the Platt calibrator's input."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)))


def calibrate(
    estimator: Any, scores: np.ndarray, y: np.ndarray, users: np.ndarray, *, seed: int
) -> tuple[Calibrated, str]:
    """Calibrate a fitted estimator from raw `scores` on rows it did not learn from.

    Isotonic or sigmoid, whichever gives the lower log loss when fitted on one half of the
    users and scored on the other (both ways round); then refitted on all the rows.
    """
    uniq = np.unique(users)
    rng = np.random.default_rng(seed)
    half = set(rng.permutation(uniq)[: len(uniq) // 2])
    a = np.array([u in half for u in users])
    losses: dict[str, float] = {}
    for method in ("sigmoid", "isotonic"):
        total = 0.0
        for fit_rows, eval_rows in ((a, ~a), (~a, a)):
            if len(np.unique(y[fit_rows])) < 2 or len(np.unique(y[eval_rows])) < 2:
                total = np.inf
                break
            cal = Calibrated(estimator, method).fit_scores(scores[fit_rows], y[fit_rows])
            p = np.clip(cal.predict_scores(scores[eval_rows]), 1e-6, 1 - 1e-6)
            total += log_loss(y[eval_rows], p, labels=[0, 1])
        losses[method] = total
    method = min(losses, key=lambda m: losses[m])
    return Calibrated(estimator, method).fit_scores(scores, y), method


def out_of_fold(
    name: str,
    params: dict[str, Any],
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    pos_weight: float,
    seed: int,
    folds: int = 5,
) -> np.ndarray:
    """Scores for the training rows from models that did not see their user (grouped K-fold):
    with the validation rows, they make a calibration set several times larger than the
    validation cutoff alone, without looking past the training period."""
    users = X["user_id"].to_numpy()
    k = min(folds, len(np.unique(users)))
    out = np.zeros(len(X))
    for fit, held in GroupKFold(n_splits=k).split(X, y, users):
        model = make_model(name, pos_weight=pos_weight, seed=seed, **params)
        out[held] = model.fit(X.iloc[fit], y[fit]).predict_proba(X.iloc[held])[:, 1]
    return out


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: str) -> float:
    """A decision threshold by a stated rule, on validation scores."""
    kind, _, value = rule.partition(":")
    if kind == "capacity":
        share = float(value or 0.05)
        return float(np.quantile(p, 1 - share))
    # every distinct score as a threshold, counted in one sorted pass
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    last = np.r_[ps[1:] != ps[:-1], True]  # the last row of each run of equal scores
    tp = np.cumsum(ys)[last]
    fp = np.cumsum(1 - ys)[last]
    thresholds = ps[last]
    fn = ys.sum() - tp
    if kind == "cost":
        ratio = float(value or 5)
        return float(thresholds[int(np.argmin(ratio * fn + fp))])
    if kind == "f1":
        f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
        return float(thresholds[int(np.argmax(f1))])
    raise InputError(
        f"threshold rule has to be one of 'f1', 'capacity:SHARE', 'cost:RATIO'. Got {rule!r}."
    )


def train(
    store: EventStore,
    config: TrainConfig,
    *,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Build snapshots from `store`, fit and compare every candidate, and pick one."""
    started = time.perf_counter()
    say = progress or (lambda _msg: None)
    say("building snapshots")
    table, _ = build_snapshots(store, definition=config.definition, schedule=config.schedule)
    df = table.to_pandas()
    df["cutoff_date"] = df["cutoff"].dt.date
    labelled = df[df["label"].notna()].copy()
    labelled["label"] = labelled["label"].astype(int)
    split = out_of_time_split(
        sorted(labelled["cutoff_date"].unique()), config.definition.horizon_days
    )
    parts = {
        name: labelled[labelled["cutoff_date"].isin(getattr(split, name))]
        for name in ("train", "validation", "test")
    }
    for name, part in parts.items():
        if part["label"].nunique() < 2:
            raise InputError(
                f"the {name} cutoffs ({split.describe()}) hold only one class: "
                "the log has too few churners for an out-of-time evaluation"
            )
    tr, va, te = parts["train"], parts["validation"], parts["test"]
    y_tr, y_va, y_te = (p["label"].to_numpy() for p in (tr, va, te))
    pos_weight = float((y_tr == 0).sum() / max((y_tr == 1).sum(), 1))
    candidates: list[Candidate] = []
    learnt = [m for m in config.models if m not in BASELINES]
    for name in config.models:
        params: dict[str, Any] = {}
        tuning = "not tuned"
        if name in learnt and config.budget_seconds > 0:
            say(f"tuning {name}")
            params, tuning = tune(
                name, tr, horizon_days=config.definition.horizon_days,
                budget_seconds=config.budget_seconds / len(learnt), seed=config.seed,
            )  # fmt: skip
        say(f"fitting {name}")
        est = make_model(name, pos_weight=pos_weight, seed=config.seed, **params).fit(tr, y_tr)
        p_va = est.predict_proba(va)[:, 1]
        val = {m: SCORE_METRICS[m](y_va, p_va) for m in ("roc_auc", "pr_auc")}
        oof = out_of_fold(name, params, tr, y_tr, pos_weight=pos_weight, seed=config.seed)
        cal, method = calibrate(
            est,
            np.r_[oof, p_va],
            np.r_[y_tr, y_va],
            np.r_[tr["user_id"].to_numpy(), va["user_id"].to_numpy()],
            seed=config.seed,
        )
        candidates.append(
            Candidate(name, cal, val, calibration=method, params=params, tuning=tuning)
        )
    eligible = [c for c in candidates if c.name not in BASELINES] or candidates
    chosen = max(
        eligible,
        key=lambda c: (
            np.nan_to_num(c.validation["pr_auc"]),
            np.nan_to_num(c.validation["roc_auc"]),
        ),
    )
    threshold = choose_threshold(
        y_va, chosen.estimator.predict_proba(va)[:, 1], config.threshold_rule
    )
    say("evaluating on the test cutoffs")
    for cand in candidates:
        p_te = cand.estimator.predict_proba(te)[:, 1]
        raw_te = cand.estimator.estimator.predict_proba(te)[:, 1]
        cand.test = evaluate_scores(
            y_te, p_te, te["user_id"].to_numpy(), threshold=threshold, ranking=raw_te,
            n_boot=config.n_boot, seed=config.seed,
        )  # fmt: skip
    base = float(np.mean(y_tr))
    base_brier = float(np.mean((y_te - base) ** 2))
    return TrainResult(
        split=split,
        candidates=candidates,
        chosen=chosen,
        threshold=threshold,
        features=feature_names(),
        snapshots=df,
        base_rate_brier=base_brier,
        horizon_days=config.definition.horizon_days,
        seconds=time.perf_counter() - started,
    )
