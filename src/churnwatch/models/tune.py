"""Hyper-parameter tuning with Optuna on the rolling-origin backtest folds.

The objective is the mean per-fold ROC-AUC, the figure the model choice uses. The number of
trials decides (a seeded TPE sampler), so the same data and seed give the same parameters; an
optional timeout only caps it, and the count actually run is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import optuna
import pandas as pd

from churnwatch.models.backtest import Fold, auc
from churnwatch.models.estimators import fit_model

log = logging.getLogger(__name__)

Space = Callable[[optuna.Trial], dict[str, Any]]
SPACES: dict[str, Space] = {
    "logistic": lambda t: {"C": t.suggest_float("C", 1e-3, 10.0, log=True)},
    "activity_logistic": lambda t: {"C": t.suggest_float("C", 1e-3, 10.0, log=True)},
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


def tune(
    name: str,
    data: pd.DataFrame,
    folds: Sequence[Fold],
    weight: np.ndarray,
    *,
    n_trials: int,
    timeout: float | None = None,
    seed: int = 0,
) -> tuple[dict[str, Any], str]:
    """Best parameters for model `name` (empty when not tuned) and what happened, in words."""
    if name not in SPACES or n_trials <= 0:
        return {}, "not tuned"
    cuts = np.asarray(data["cutoff_date"])
    y = data["label"].to_numpy()

    def objective(trial: optuna.Trial) -> float:
        params = SPACES[name](trial)
        scores = []
        for fold in folds:
            fit, ev = pd.Series(cuts).isin(fold.fit).to_numpy(), cuts == fold.cutoff
            model = fit_model(name, params, data[fit], y[fit], weight[fit], seed=seed)
            scores.append(auc(y[ev], model.predict_proba(data[ev])[:, 1]))
        return float(np.nanmean(scores))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials, timeout=timeout)
    done = len(study.trials)
    return dict(study.best_params), (
        f"tuned: {done} of {n_trials} trial(s) over {len(folds)} backtest folds, "
        f"best mean ROC-AUC {study.best_value:.3f}"
    )
