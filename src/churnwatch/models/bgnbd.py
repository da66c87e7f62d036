"""The BG/NBD baseline (Fader, Hardie and Lee 2005, through the `lifetimes` package): the
textbook model of a non-contractual customer base, where a customer buys at their own rate
until, unseen, they leave. It ranks users by 1 - P(alive) given each one's history before the
cutoff: how many days they were active, when they were last active, and how long they have
been seen. It needs no labels, so it is fitted on the training rows' histories only."""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from churnwatch import optional
from churnwatch.errors import ChurnwatchError


class ConvergenceError(ChurnwatchError):
    """The BG/NBD likelihood could not be maximised on these histories."""


# the snapshot columns a history is read from (in every catalog)
COLUMNS = ("active_days_all", "observed_days_all", "recency_days")
_MAX_ROWS = 100_000  # histories a fit reads at most (an even, seeded sample above that)


def histories(X: pd.DataFrame, unit: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frequency, recency, T) as BG/NBD reads them: repeat active days, the age at the last
    active day and the age at the cutoff, in units of `unit` days."""
    T = np.maximum(X["observed_days_all"].to_numpy(dtype=float), 1.0)
    frequency = np.maximum(X["active_days_all"].to_numpy(dtype=float) - 1.0, 0.0)
    recency = np.clip(T - np.floor(X["recency_days"].to_numpy(dtype=float)), 0.0, T)
    recency = np.where(frequency > 0, recency, 0.0)
    return frequency, recency / unit, T / unit


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The optimiser's overflow and log(0) warnings, and the result lifetimes prints before
    it gives up (the fit is retried more penalised): they say nothing to a user."""
    with np.errstate(all="ignore"), warnings.catch_warnings(), \
            contextlib.redirect_stdout(io.StringIO()):  # fmt: skip
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


class BetaGeoBaseline(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """1 - P(alive) under a BG/NBD model fitted on the histories of the training rows."""

    def __init__(self, penalizer: float = 0.001, seed: int = 0) -> None:
        self.penalizer = penalizer
        self.seed = seed

    # time is measured in units of a tenth of the longest history, which keeps the optimiser
    # in range on any cadence; a fit that does not converge is retried more penalised
    _RETRIES = (1.0, 10.0, 100.0)

    def fit(self, X: pd.DataFrame, y: Any = None, sample_weight: Any = None) -> BetaGeoBaseline:
        rows = X[list(COLUMNS)]
        if len(rows) > _MAX_ROWS:
            pick = np.random.default_rng(self.seed).choice(len(rows), _MAX_ROWS, replace=False)
            rows = rows.iloc[np.sort(pick)]
        lifetimes = optional.lifetimes()
        self.unit_ = max(float(rows["observed_days_all"].max()) / 10.0, 1.0)
        for factor in self._RETRIES:
            fitter = lifetimes.BetaGeoFitter(penalizer_coef=self.penalizer * factor)
            try:
                with _quiet():
                    fitter.fit(*histories(rows, self.unit_))
                break
            except lifetimes.utils.ConvergenceError:
                continue
        else:
            raise ConvergenceError("the BG/NBD fit did not converge, even penalised")
        self.params_ = {k: float(v) for k, v in fitter.params_.items()}
        self.classes_ = np.array([0, 1])
        self.n_features_in_ = len(COLUMNS)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "params_")
        fitter = optional.lifetimes().BetaGeoFitter()
        fitter.params_ = pd.Series(self.params_)
        with _quiet():
            alive = fitter.conditional_probability_alive(*histories(X, self.unit_))
        alive = np.asarray(alive, dtype=float)
        p = np.clip(1.0 - alive, 0.0, 1.0)
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
