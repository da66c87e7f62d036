"""The candidate models, each a scikit-learn Pipeline from a snapshot DataFrame to P(churn).

- `seed_rf`: the seed project's baseline, a random forest on the seven seed features;
- `heuristic`: no training; the recent rate of risky pages (thumbs down, adverts, errors, help,
  settings, downgrade views) against activity, and how long the user has been away;
- `logistic`: log-transformed, scaled, L2-regularised, class-weighted logistic regression;
- `random_forest`: class_weight='balanced';
- `xgboost`: scale_pos_weight = negatives / positives;
- `lightgbm`: the same weighting.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from churnwatch.errors import ConfigError
from churnwatch.features.catalog import SEED_FEATURES, catalog

MODELS = ("seed_rf", "heuristic", "logistic", "random_forest", "xgboost", "lightgbm")
BASELINES = ("seed_rf", "heuristic")  # reported for comparison, never chosen to serve


def numeric_features() -> list[str]:
    return [f.name for f in catalog() if f.kind != "category"]


def categorical_features() -> list[str]:
    return [f.name for f in catalog() if f.kind == "category"]


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)))


def _preprocess(*, scale: bool) -> ColumnTransformer:
    numeric: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if scale:
        numeric += [
            ("log", FunctionTransformer(_signed_log1p, feature_names_out="one-to-one")),
            ("scale", StandardScaler()),
        ]
    return ColumnTransformer(
        [
            ("num", Pipeline(numeric), numeric_features()),
            (
                "cat",
                OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=10),
                categorical_features(),
            ),
        ],
        verbose_feature_names_out=False,
    )


def _frame(pre: ColumnTransformer) -> ColumnTransformer:
    """Make the transformer return a DataFrame, so the model sees column names."""
    pre.set_params(cat__sparse_output=False)
    return pre.set_output(transform="pandas")


class RiskyPageRate(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A no-training baseline: recent risky-page rate over activity, plus time away.

    Risky pages are the ones a user passes on the way to `Cancel` (thumbs down, adverts,
    settings, downgrade views) and signs of trouble (errors, help). The score is mapped to
    (0, 1) by s / (1 + s); `fit` learns nothing but the classes.
    """

    risky = ("thumbs_down", "adverts", "settings", "downgrade_views", "errors", "help")

    def __init__(self, window: str = "14d") -> None:
        self.window = window

    def fit(self, X: pd.DataFrame, y: Any = None) -> RiskyPageRate:
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = X.shape[1]
        return self

    def _score(self, X: pd.DataFrame) -> np.ndarray:
        w = self.window
        risky = sum(X[f"{p}_per_day_{w}"].fillna(0).to_numpy(float) for p in self.risky)
        activity = X[f"events_per_day_{w}"].fillna(0).to_numpy(float)
        away = X["recency_days"].fillna(0).to_numpy(float)
        return np.asarray(10 * risky / (activity + 1.0) + away / 7.0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "classes_")
        s = self._score(X)
        p = s / (1.0 + s)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


# Features that can only raise the risk, by what churn is: bad experiences. Boosted trees are
# constrained to be monotone increasing in them, so that a model never learns from a proxy
# (errors happen to the most active users, who churn less) that more errors look safer.
INCREASING = ("thumbs_down", "adverts", "errors")


def _increasing(name: str) -> bool:
    """Counts, rates and shares of the bad-experience pages (thumbs_down_share_7d, ...)."""
    return name.startswith(INCREASING)


class MonotoneBooster(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Fits a boosted-tree classifier with monotone-increasing constraints on the columns of X
    (a DataFrame) named in INCREASING; the constraint vector is built from X's columns at fit
    time, since one-hot columns are only known then."""

    def __init__(self, booster: Any = None) -> None:
        self.booster = booster

    def fit(self, X: pd.DataFrame, y: Any) -> MonotoneBooster:
        from sklearn.base import clone

        constraints = [1 if _increasing(str(c)) else 0 for c in X.columns]
        est = clone(self.booster)
        key = "monotone_constraints"
        value: Any = "(" + ",".join(map(str, constraints)) + ")"
        if type(est).__name__ == "LGBMClassifier":
            value = constraints
        est.set_params(**{key: value})
        self.booster_ = est.fit(X, y)
        self.classes_ = self.booster_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "booster_")
        return np.asarray(self.booster_.predict_proba(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(X))


def _boosted(booster: Any) -> Pipeline:
    """A boosted-tree pipeline: named columns in, monotone constraints on bad experiences."""
    return Pipeline(
        [("pre", _frame(_preprocess(scale=False))), ("model", MonotoneBooster(booster))]
    )


def make_model(name: str, *, pos_weight: float, seed: int = 0, **params: Any) -> Pipeline:
    """A fresh, unfitted pipeline for model `name`; `params` override the defaults."""
    if name == "seed_rf":
        pre = ColumnTransformer(
            [("num", SimpleImputer(strategy="median"), list(SEED_FEATURES))],
            verbose_feature_names_out=False,
        )
        rf = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=2)
        return Pipeline([("pre", pre), ("model", rf.set_params(**params))])
    if name == "heuristic":
        return Pipeline([("model", RiskyPageRate(**params))])
    if name == "logistic":
        lr = LogisticRegression(C=0.05, class_weight="balanced", max_iter=5000)
        return Pipeline([("pre", _preprocess(scale=True)), ("model", lr.set_params(**params))])
    if name == "random_forest":
        rf = RandomForestClassifier(
            n_estimators=400,
            min_samples_leaf=5,
            max_features="sqrt",
            class_weight="balanced",
            random_state=seed,
            n_jobs=2,
        )
        return Pipeline([("pre", _preprocess(scale=False)), ("model", rf.set_params(**params))])
    if name == "xgboost":
        from xgboost import XGBClassifier

        xgb = XGBClassifier(
            n_estimators=300,
            max_depth=3,
            learning_rate=0.05,
            subsample=0.8,
            colsample_bytree=0.5,
            min_child_weight=2,
            reg_lambda=5.0,
            scale_pos_weight=pos_weight,
            tree_method="hist",
            n_jobs=2,
            random_state=seed,
            eval_metric="aucpr",
        )
        return _boosted(xgb.set_params(**params))
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        lgbm = LGBMClassifier(
            n_estimators=300,
            learning_rate=0.03,
            num_leaves=15,
            min_child_samples=20,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.5,
            reg_lambda=5.0,
            scale_pos_weight=pos_weight,
            random_state=seed,
            n_jobs=2,
            verbose=-1,
        )
        return _boosted(lgbm.set_params(**params))
    raise ConfigError(f"model has to be one of {', '.join(MODELS)}. Got {name!r} instead.")
