"""Hyper-parameter tuning with Optuna under a time budget, cross-validated forward in time on
the training cutoffs only (validation and test are never seen).

Fold k validates on training cutoff v_k with a model fitted on the training cutoffs whose
horizon ends at or before v_k; the objective is the mean PR-AUC over the folds. With fewer than
two such folds (a short log), tuning is skipped and the defaults are kept, with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import numpy as np
import optuna
import pandas as pd

from churnwatch.models.estimators import make_model
from churnwatch.models.metrics import SCORE_METRICS

log = logging.getLogger(__name__)

Space = Callable[[optuna.Trial], dict[str, Any]]
SPACES: dict[str, Space] = {
    "logistic": lambda t: {"C": t.suggest_float("C", 1e-3, 10.0, log=True)},
    "random_forest": lambda t: {
        "min_samples_leaf": t.suggest_int("min_samples_leaf", 1, 40),
        "max_features": t.suggest_float("max_features", 0.02, 0.5),
    },
    "xgboost": lambda t: {
        "max_depth": t.suggest_int("max_depth", 2, 6),
        "learning_rate": t.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "n_estimators": t.suggest_int("n_estimators", 50, 400),
        "min_child_weight": t.suggest_float("min_child_weight", 0.5, 20.0, log=True),
        "reg_lambda": t.suggest_float("reg_lambda", 0.1, 50.0, log=True),
    },
    "lightgbm": lambda t: {
        "num_leaves": t.suggest_int("num_leaves", 4, 63),
        "learning_rate": t.suggest_float("learning_rate", 0.01, 0.3, log=True),
        "n_estimators": t.suggest_int("n_estimators", 50, 400),
        "min_child_samples": t.suggest_int("min_child_samples", 5, 60),
        "reg_lambda": t.suggest_float("reg_lambda", 0.1, 50.0, log=True),
    },
}


def forward_folds(cutoffs: list[date], horizon_days: int) -> list[tuple[list[date], date]]:
    """(fit cutoffs, validation cutoff) pairs, each validation cutoff later than its fit
    cutoffs' horizons."""
    horizon = timedelta(days=horizon_days)
    folds = []
    for v in sorted(cutoffs):
        fit = [c for c in cutoffs if c + horizon <= v]
        if fit:
            folds.append((fit, v))
    return folds


def tune(
    name: str,
    train: pd.DataFrame,
    *,
    horizon_days: int,
    budget_seconds: float,
    seed: int = 0,
) -> tuple[dict[str, Any], str]:
    """Best parameters for model `name` (empty when not tuned) and what happened, in words."""
    if name not in SPACES or budget_seconds <= 0:
        return {}, "not tuned"
    folds = [
        (fit, v)
        for fit, v in forward_folds(sorted(train["cutoff_date"].unique()), horizon_days)
        if train.loc[train["cutoff_date"] == v, "label"].nunique() == 2
        and train.loc[train["cutoff_date"].isin(fit), "label"].nunique() == 2
    ]
    if len(folds) < 2:
        return {}, (
            f"not tuned: {len(folds)} forward fold(s) in the training period; "
            "at least 2 are needed (a longer log, or more frequent cutoffs)"
        )

    def objective(trial: optuna.Trial) -> float:
        params = SPACES[name](trial)
        scores = []
        for fit, v in folds:
            a = train[train["cutoff_date"].isin(fit)]
            b = train[train["cutoff_date"] == v]
            y = a["label"].to_numpy()
            pos_weight = float((y == 0).sum() / max((y == 1).sum(), 1))
            model = make_model(name, pos_weight=pos_weight, seed=seed, **params).fit(a, y)
            p = model.predict_proba(b)[:, 1]
            scores.append(SCORE_METRICS["pr_auc"](b["label"].to_numpy(), p))
        return float(np.nanmean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=budget_seconds, n_trials=200)
    done = len(study.trials)
    return dict(study.best_params), (
        f"tuned: {done} trial(s) over {len(folds)} forward folds, "
        f"best mean PR-AUC {study.best_value:.3f}"
    )
