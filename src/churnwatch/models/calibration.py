"""Calibration: raw scores to probabilities (Platt scaling on the log-odds, or isotonic
regression), fitted on rows the model did not learn from; `logit`, which the serving scorer
also uses to apply a Platt calibrator."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

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
