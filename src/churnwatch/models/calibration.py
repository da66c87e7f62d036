"""Calibration: raw scores to probabilities (Platt scaling on the log-odds; isotonic
regression for models registered before it was dropped), fitted on rows the model did not
learn from; `logit`, which the serving scorer also uses to apply a Platt calibrator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from churnwatch.errors import InputError


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


def calibrate(estimator: Any, scores: np.ndarray, y: np.ndarray) -> Calibrated:
    """Calibrate a fitted estimator from raw `scores` on rows it did not learn from, by Platt
    scaling on the log-odds.

    Isotonic regression is not chosen any more (models registered with it still load and
    serve): its steps give whole groups of users one probability, so the served list orders
    them arbitrarily (the ten riskiest users of a demo run all at 12.4 %), while ROC-AUC and
    lift are measured on the raw scores. Platt's map is strictly increasing: the served
    ranking is the model's.
    """
    return Calibrated(estimator, "sigmoid").fit_scores(scores, y)
