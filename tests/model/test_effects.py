"""Reasons come only from features whose effect keeps its sign across backtest folds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnwatch.models.effects import fold_effects, stable_features, used_columns
from churnwatch.models.estimators import ACTIVITY, fit_model


def _activity_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Synthetic snapshots: risk rises with events a day, falls on the paid level; the other
    activity rates are noise."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({c: rng.lognormal(1.0, 0.6, n) for c in ACTIVITY if c != "is_paid"})
    df["is_paid"] = rng.integers(0, 2, n).astype(float)
    margin = 2.0 * np.log(df["events_per_exposure_day"]) - 1.5 * df["is_paid"] - 3.0
    y = (rng.random(n) < 1 / (1 + np.exp(-margin))).astype(int)
    return df, y


def test_fold_effects_follow_the_model() -> None:
    df, y = _activity_frame(4000, seed=1)
    model = fit_model("activity_logistic", {"C": 1.0}, df, y, np.ones(len(y)), seed=0)
    assert used_columns(model) == set(ACTIVITY)
    eff = fold_effects(model, df, seed=0)
    assert set(eff) == set(ACTIVITY)
    assert eff["events_per_exposure_day"] > 0.01  # more events: more risk
    assert eff["is_paid"] < -0.01  # paid: less risk (0 -> 1 is the 10th -> 90th move)
    # the noise features move the probability far less than the real one
    noise = [abs(eff[c]) for c in ACTIVITY if c not in ("events_per_exposure_day", "is_paid")]
    assert max(noise) < abs(eff["events_per_exposure_day"]) / 3


def test_only_features_with_one_sign_in_every_fold_are_stable() -> None:
    folds = [
        {"a": 0.02, "b": 0.01, "c": -0.03, "d": 0.0},
        {"a": 0.01, "b": -0.01, "c": -0.02, "d": 0.0},
        {"a": 0.03, "b": 0.02, "c": -0.01, "d": 0.0},
    ]
    assert stable_features(folds) == ["a", "c"]
    assert stable_features([]) == []
    # refitting on folds whose signal flips: the flipping feature is dropped
    per_fold = []
    for seed, sign in ((1, 1.0), (2, -1.0), (3, 1.0)):
        df, y = _activity_frame(3000, seed)
        df["home_per_exposure_day"] = df["home_per_exposure_day"] * 0 + (
            np.where(y == 1, 1.0 + sign, 1.0 - sign) + np.random.default_rng(seed).random(len(y))
        )
        model = fit_model("activity_logistic", {"C": 1.0}, df, y, np.ones(len(y)), seed=0)
        per_fold.append(fold_effects(model, df, seed=seed))
    stable = stable_features(per_fold)
    assert "events_per_exposure_day" in stable and "is_paid" in stable
    assert "home_per_exposure_day" not in stable
