"""The candidate models, each a scikit-learn Pipeline from a snapshot DataFrame to P(churn).

The order is the one the backtest's one-standard-error rule uses: a candidate replaces the
ones before it only when it beats them by more than the noise. First comes the reference, the
candidate every other one, baselines included, has to beat: it ranked best in every direction
of the transfer matrix over the three eventsim development logs and in each log's own
backtest (BENCHMARKS.md).
- `activity_logistic`: logistic regression on a handful of activity rates per exposure day and
  the level: few parameters, so it transfers to logs it never saw;

Then the baselines (reported beside every model, and allowed to win the backtest), fewest
learnt parameters first:
- `rate_rule`: no training; the sum of the all-history per-observed-day rates of the risky pages
  (thumbs down, adverts, settings, help, errors, upgrade and downgrade views);
- `seed_logistic`: class-weighted logistic regression on the seed project's seven features,
  counts turned into rates per observed day;
- `seed_rf`: the seed project's random forest on its seven features (after `logistic`).

Then the other learnt candidates, simplest first:
- `logistic`: every per-exposure-day page rate, the level and the recency, strongly regularised;
- `lightgbm`: boosted trees on the transferable features (rates, shares, trends, level);
- `ensemble`: the mean log-odds of `activity_logistic` and `lightgbm`;
- `mlp`: a small neural network on the `logistic` inputs;
- `random_forest`: a class-weighted random forest on every feature (a previous release's
  candidate);
- `xgboost`: boosted trees (XGBoost) on every feature (a previous release's candidate).

Logs that are not eventsim's (an `events` feature catalog) have candidates of their own:
- `recency_rule` (baseline): no training; the days since the user's last event;
- `bgnbd` (baseline, reported but never chosen): 1 - P(alive) under a BG/NBD model
  (`models.bgnbd`);
- `events_logistic`: logistic regression on the log's rates per exposure day, recency, the gap
  against the usual gap, the trend and the value per event;
- `events_lightgbm`: boosted trees on every numeric feature of the log's catalog.

Each pipeline picks its columns from the frame it is fitted on (`Present`): a column the log's
catalog does not have is left out, never invented.

Class weights: `class_weight='balanced'` for the linear models and forests, `scale_pos_weight`
= negatives / positives for the boosters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted

from churnwatch import optional
from churnwatch.errors import ConfigError
from churnwatch.features.catalog import EXPOSURE_COUNTS
from churnwatch.models.bgnbd import BetaGeoBaseline

# Every candidate in the order of the backtest's one-standard-error rule: a later one replaces
# an earlier one only when it wins by more than the noise. First the reference,
# activity_logistic (see the module's docstring: the rate rule placed first won the dev log's
# 4-fold backtest within the noise, 0.739 against 0.772, and then ranked the other two logs at
# 0.694 and 0.745 where activity_logistic gives 0.743 and 0.753). Then fewest learnt parameters
# first, whether a baseline or not: the seed's forest (200 full-depth trees) comes after the
# linear models. Placed before them, it won a 400-user, 3-fold backtest within the noise of
# logistic's 0.66 with 0.61, and then scored 0.43 on an unseen log; it trails seed_logistic on
# every eventsim log (BENCHMARKS.md).
ALL_MODELS = (
    "activity_logistic",
    "rate_rule",
    "seed_logistic",
    "logistic",
    "seed_rf",
    "lightgbm",
    "ensemble",
    "mlp",
    "random_forest",
    "xgboost",
    "recency_rule",
    "bgnbd",
    "events_logistic",
    "events_lightgbm",
)
BASELINES = ("rate_rule", "seed_logistic", "seed_rf", "recency_rule", "bgnbd")
NEVER_CHOSEN = ("bgnbd",)  # reported beside the others as a reference, never served
EVENT_MODELS = ("recency_rule", "bgnbd", "events_logistic", "events_lightgbm")
# What `train` compares by default: the baselines and the learnt candidates the transfer
# benchmark supports (see BENCHMARKS.md); the rest are available through --models.
MODELS = ("activity_logistic", "rate_rule", "seed_logistic", "logistic", "seed_rf", "lightgbm")
# ... and with the inactivity definition. The rate rule ranks risky pages, the steps to a
# cancellation, and is backwards for going quiet (mean fold ROC-AUC 0.30 on the eventsim dev
# log with 14 inactivity days); the days since the last event are the baseline a learnt model
# has to beat there (0.75; logistic C=0.1, chosen, 0.79). No transfer result puts a learnt
# model first, so the order is the plain one: the rule, then fewest learnt parameters first.
INACTIVITY_MODELS = ("recency_rule", "activity_logistic", "seed_logistic", "logistic", "seed_rf",
                     "lightgbm")  # fmt: skip


def default_models(catalog: str, definition: str) -> tuple[str, ...]:
    """The candidates `train` compares when none are named: by the log's feature catalog
    (`events` for a log of any event types) and the churn definition."""
    if catalog == "events":
        return EVENT_MODELS
    return INACTIVITY_MODELS if definition == "inactivity" else MODELS


# Regularisation paths the backtest walks for a model that is not tuned by trials, strongest
# (simplest) first: each value is a candidate of its own, so the one-standard-error rule picks
# the strongest regularisation within the noise of the best (glmnet's lambda.1se).
PATHS: dict[str, tuple[str, tuple[float, ...]]] = {
    "activity_logistic": ("C", (0.01, 0.1, 1.0)),
    "logistic": ("C", (0.01, 0.1, 1.0)),
    "events_logistic": ("C", (0.01, 0.1, 1.0)),
}
# what an `events` catalog offers a linear model: rates, recency, gaps, trend, value
EVENT_CORE = ("events_per_exposure_day", "value_per_exposure_day", "recency_days", "gap_ratio",
              "mean_gap_days", "trend_events", "active_share_all", "value_mean_all")  # fmt: skip
NOT_FEATURES = ("user_id", "cutoff", "cutoff_date", "cutoff_day", "label")

RISKY_PAGES = ("thumbs_down", "adverts", "settings", "help", "errors", "upgrade_views",
               "downgrade_views")  # fmt: skip
RULE_FEATURES = tuple(f"{p}_per_day_all" for p in RISKY_PAGES)
# the seed project's seven features, counts as rates per observed day
SEED_RATES = ("songs_per_day_all", "artists_per_day_all", "mean_song_length", "tenure_days",
              "recency_days", "is_male", "is_paid")  # fmt: skip
ACTIVITY = ("events_per_exposure_day", "sessions_per_exposure_day", "home_per_exposure_day",
            "songs_per_exposure_day", "is_paid")  # fmt: skip
EXPOSURE_RATES = tuple(f"{c}_per_exposure_day" for c in EXPOSURE_COUNTS)
# Features whose meaning does not drift with the calendar: rates, shares and trends, not
# counts that grow with the length of the log (tenure, exposure, all-history totals).
TRANSFER = (
    *EXPOSURE_RATES,
    *(f"{s}_per_day_{w}" for w in ("7d", "28d") for s in ("events", "thumbs_down", "adverts",
                                                          "settings", "downgrade_views", "songs")),
    "thumbs_down_share_28d", "adverts_per_song_28d", "active_share_28d",
    "trend_events", "trend_thumbs_down", "recency_days", "is_paid",
)  # fmt: skip


class Present:
    """A column selector: the `wanted` columns the frame has, in the wanted order; without
    `wanted`, every feature column of the frame of `kind` (numbers, or text for categories)."""

    def __init__(self, wanted: tuple[str, ...] = (), kind: str = "numeric") -> None:
        self.wanted = wanted
        self.kind = kind

    def __call__(self, X: pd.DataFrame) -> list[str]:
        if self.wanted:
            return [c for c in self.wanted if c in X.columns]
        feats = [c for c in X.columns if c not in NOT_FEATURES]
        numeric = [c for c in feats if pd.api.types.is_numeric_dtype(X[c])]
        if self.kind == "numeric":
            return numeric
        return [c for c in feats if c not in numeric and not _is_time(X[c])]


def _is_time(col: pd.Series) -> bool:
    return bool(pd.api.types.is_datetime64_any_dtype(col))


def _signed_log1p(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)))


def _preprocess(
    *, scale: bool, columns: tuple[str, ...] | None = None, impute: str = "median"
) -> ColumnTransformer:
    """Imputation (then log and scaling, for linear models and networks) of the numeric
    `columns` (every numeric feature when None), one-hot categories only with every feature.
    The serving scorer compiles exactly these steps."""
    fill = SimpleImputer(strategy="constant", fill_value=0.0) if impute == "zero" else None
    numeric: list[tuple[str, Any]] = [("impute", fill or SimpleImputer(strategy="median"))]
    if scale:
        numeric += [
            ("log", FunctionTransformer(_signed_log1p, feature_names_out="one-to-one")),
            ("scale", StandardScaler()),
        ]
    blocks: list[tuple[str, Any, Any]] = [
        ("num", Pipeline(numeric), Present(columns) if columns else Present(kind="numeric"))
    ]
    if columns is None:
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=10)
        blocks.append(("cat", encoder, Present(kind="category")))
    return ColumnTransformer(blocks, verbose_feature_names_out=False)


def _frame(pre: ColumnTransformer) -> ColumnTransformer:
    """Make the transformer return a DataFrame, so the model sees column names."""
    pre.set_params(cat__sparse_output=False)
    return pre.set_output(transform="pandas")


class RateRule(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A no-training baseline: the sum of its input columns (the risky-page rates).

    It is linear with every coefficient 1 (`coef_`, `intercept_` as a linear model has them),
    so the serving scorer explains it like a logistic regression: each rate is its own
    contribution. `fit` learns nothing but the classes.
    """

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> RateRule:
        self.n_features_in_ = np.asarray(X).shape[1]
        self.coef_ = np.ones((1, self.n_features_in_))
        self.intercept_ = np.zeros(1)
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        margin = np.asarray(X, dtype=float) @ self.coef_[0] + self.intercept_[0]
        p = 1.0 / (1.0 + np.exp(-margin))
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


class LogitAverage(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A small ensemble: the mean log-odds of its fitted members (each a full pipeline)."""

    def __init__(self, members: tuple[Any, ...] = ()) -> None:
        self.members = members

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> LogitAverage:
        self.members_ = [
            clone(m).fit(X, y, model__sample_weight=sample_weight) for m in self.members
        ]
        self.classes_ = np.array([0, 1])
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "members_")
        q = [np.clip(m.predict_proba(X)[:, 1], 1e-9, 1 - 1e-9) for m in self.members_]
        margin = np.mean([np.log(v / (1 - v)) for v in q], axis=0)
        p = 1.0 / (1.0 + np.exp(-margin))
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

    def fit(self, X: pd.DataFrame, y: Any, sample_weight: Any = None) -> MonotoneBooster:
        constraints = [1 if _increasing(str(c)) else 0 for c in X.columns]
        est = clone(self.booster)
        key = "monotone_constraints"
        value: Any = "(" + ",".join(map(str, constraints)) + ")"
        if type(est).__name__ == "LGBMClassifier":
            value = constraints
        est.set_params(**{key: value})
        self.booster_ = est.fit(X, y, sample_weight=sample_weight)
        self.classes_ = self.booster_.classes_
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "booster_")
        return np.asarray(self.booster_.predict_proba(X))

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster_.predict(X))


def _boosted(booster: Any, columns: tuple[str, ...] | None = None) -> Pipeline:
    """A boosted-tree pipeline: named columns in, monotone constraints on bad experiences."""
    pre = _preprocess(scale=False, columns=columns)
    if columns is None:
        pre = _frame(pre)
    else:
        pre.set_output(transform="pandas")
    return Pipeline([("pre", pre), ("model", MonotoneBooster(booster))])


def _logistic(columns: tuple[str, ...], C: float) -> Pipeline:
    lr = LogisticRegression(C=C, class_weight="balanced", max_iter=5000)
    return Pipeline([("pre", _preprocess(scale=True, columns=columns)), ("model", lr)])


def _rate_rule(pos_weight: float, seed: int) -> Pipeline:
    pre = _preprocess(scale=False, columns=RULE_FEATURES, impute="zero")
    return Pipeline([("pre", pre), ("model", RateRule())])


def _seed_rf(pos_weight: float, seed: int) -> Pipeline:
    rf = RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=2)
    return Pipeline([("pre", _preprocess(scale=False, columns=SEED_COUNTS)), ("model", rf)])


def _ensemble(pos_weight: float, seed: int) -> Pipeline:
    members = tuple(make_model(m, pos_weight=pos_weight, seed=seed)
                    for m in ("activity_logistic", "lightgbm"))  # fmt: skip
    return Pipeline([("model", LogitAverage(members))])


def _mlp(pos_weight: float, seed: int) -> Pipeline:
    columns = (*EXPOSURE_RATES, "recency_days", "is_paid")
    net = MLPClassifier(hidden_layer_sizes=(8,), alpha=1.0, max_iter=2000, early_stopping=False,
                        random_state=seed)  # fmt: skip
    return Pipeline([("pre", _preprocess(scale=True, columns=columns)), ("model", net)])


def _random_forest(pos_weight: float, seed: int) -> Pipeline:
    rf = RandomForestClassifier(n_estimators=400, min_samples_leaf=5, max_features="sqrt",
                                class_weight="balanced", random_state=seed, n_jobs=2)  # fmt: skip
    return Pipeline([("pre", _preprocess(scale=False)), ("model", rf)])


# Every candidate's builder: (weight of the positive class, seed) -> an unfitted pipeline.
BUILDERS: dict[str, Callable[[float, int], Pipeline]] = {
    "rate_rule": _rate_rule,
    "seed_logistic": lambda w, s: _logistic(SEED_RATES, 1.0),
    "seed_rf": _seed_rf,
    "activity_logistic": lambda w, s: _logistic(ACTIVITY, 0.01),
    "logistic": lambda w, s: _logistic((*EXPOSURE_RATES, "recency_days", "is_paid"), 0.01),
    "lightgbm": lambda w, s: _boosted(_lightgbm(w, s), TRANSFER),
    "ensemble": _ensemble,
    "mlp": _mlp,
    "random_forest": _random_forest,
    "xgboost": lambda w, s: _boosted(_xgboost(w, s)),
    "recency_rule": lambda w, s: Pipeline([
        ("pre", _preprocess(scale=False, columns=("recency_days",), impute="zero")),
        ("model", RateRule()),
    ]),
    "bgnbd": lambda w, s: Pipeline([("model", BetaGeoBaseline(seed=s))]),
    "events_logistic": lambda w, s: _logistic(EVENT_CORE, 0.1),
    "events_lightgbm": lambda w, s: _boosted(_lightgbm(w, s)),
}  # fmt: skip


def make_model(name: str, *, pos_weight: float, seed: int = 0, **params: Any) -> Pipeline:
    """A fresh, unfitted pipeline for model `name`; `params` override the defaults."""
    if name not in BUILDERS:
        raise ConfigError(f"model has to be one of {', '.join(ALL_MODELS)}. Got {name!r} instead.")
    pipe = BUILDERS[name](pos_weight, seed)
    if params:
        model = pipe.named_steps["model"]
        target = getattr(model, "booster", model)
        target.set_params(**params)
    return pipe


def fit_model(
    name: str, params: dict[str, Any], X: pd.DataFrame, y: np.ndarray, w: np.ndarray, *, seed: int
) -> Any:
    """Fit candidate `name` on (X, y) with sample weights `w`; boosters weigh the classes by
    their (weighted) counts."""
    pos = float(w[y == 1].sum())
    pos_weight = float(w[y == 0].sum() / pos) if pos else 1.0
    model = make_model(name, pos_weight=pos_weight, seed=seed, **params)
    forest = model.named_steps.get("model")
    weeks = max(round(float(w.sum())), 1)
    if isinstance(forest, RandomForestClassifier) and forest.max_samples is None and weeks < len(w):
        # daily snapshots weighted 1/7 are near-copies: each tree draws as many rows as there
        # are user-weeks, as it would from weekly snapshots (a count: a fraction would be of
        # the weights' sum). Drawing every row, a fit of the seed's forest on `make demo`'s
        # 200,000 rows took 35 s (now 9 s), and trained on the dev log it ranked the 500-user
        # log at 0.615 (now 0.636)
        forest.set_params(max_samples=weeks)
    return model.fit(X, y, model__sample_weight=w)


# the seed project's random forest saw the counts themselves
SEED_COUNTS = ("songs_all", "distinct_artists", "mean_song_length", "tenure_days",
               "recency_days", "is_male", "is_paid")  # fmt: skip


def _lightgbm(pos_weight: float, seed: int) -> Any:
    return optional.lightgbm().LGBMClassifier(
        n_estimators=200,
        learning_rate=0.03,
        num_leaves=4,
        min_child_samples=100,
        subsample=0.7,
        subsample_freq=1,
        colsample_bytree=0.5,
        reg_lambda=10.0,
        scale_pos_weight=pos_weight,
        random_state=seed,
        n_jobs=2,
        verbose=-1,
    )


def _xgboost(pos_weight: float, seed: int) -> Any:
    return optional.xgboost().XGBClassifier(
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
