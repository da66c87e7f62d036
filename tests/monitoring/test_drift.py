"""Drift: flagged on a log with the simulated app release (adverts x2 for free users, errors
x3), not on the same log without it. The false-alarm rate over more seeds is measured by
`python -m bench.drift_alarms` (see README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnwatch.config import Settings
from churnwatch.features.catalog import feature_names
from churnwatch.monitoring.alerts import evaluate_rules
from churnwatch.monitoring.demo import drift_windows
from churnwatch.monitoring.drift import detect_drift, monitored_features, psi


def test_psi() -> None:
    rng = np.random.default_rng(0)
    a = pd.Series(rng.normal(size=5000))
    assert psi(a, pd.Series(rng.normal(size=5000))) < 0.01
    assert psi(a, pd.Series(rng.normal(0.5, 1, size=5000))) > 0.2
    cats = pd.Series(["free"] * 70 + ["paid"] * 30, dtype=object)
    assert psi(cats, cats) < 1e-9
    assert psi(cats, pd.Series(["free"] * 30 + ["paid"] * 70, dtype=object)) > 0.5


@pytest.mark.slow
def test_drift_is_flagged_on_a_shifted_log_and_not_on_an_unshifted_one(tmp_path: Path) -> None:
    settings = Settings()
    feats = monitored_features(feature_names())
    ref, cur = drift_windows(tmp_path, seed=1, drift_day=None)
    calm = detect_drift(ref, cur, feats, min_psi=settings.drift_min_psi)
    # the same seed: the same log until day 56
    ref, cur = drift_windows(tmp_path, seed=1, drift_day=56)
    shifted = detect_drift(ref, cur, feats, min_psi=settings.drift_min_psi)
    assert calm.share < settings.alert_drift_share <= shifted.share
    assert not evaluate_rules(settings, drift_share=calm.share)
    assert [a.kind for a in evaluate_rules(settings, drift_share=shifted.share)] == ["drift"]
    drifted = shifted.columns[shifted.columns["drifted"]]["column"].tolist()
    assert any(c.startswith(("adverts", "errors")) for c in drifted), drifted
    assert not any(c.startswith(("adverts", "errors")) for c in
                   calm.columns[calm.columns["drifted"]]["column"])  # fmt: skip


def test_prediction_drift_is_measured_against_the_served_models_own_scores() -> None:
    """The backtest's fold models spread their scores less than the model refitted on
    everything: against them, an unchanged population reads as prediction drift; against the
    served model's own scores on unseen rows, it does not."""
    rng = np.random.default_rng(0)
    n = 1500
    feats = ["events_per_day_7d", "thumbs_down_7d"]

    def frame(score: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"events_per_day_7d": rng.gamma(2.0, 5.0, n),
                             "thumbs_down_7d": rng.poisson(2.0, n), "score": score})  # fmt: skip

    served = rng.beta(1.0, 20.0, n)  # the served model: spread out
    backtest = frame(0.05 + 0.3 * (rng.beta(1.0, 20.0, n) - 0.05))  # the fold models: narrower
    current = frame(rng.beta(1.0, 20.0, n))
    naive = detect_drift(backtest, current, feats)
    fair = detect_drift(backtest, current, feats, score_reference=frame(served))
    assert naive.score_psi > 0.5 and fair.score_psi < 0.05
    assert naive.share == fair.share == 0.0  # the features are compared the same way
    assert set(fair.columns["column"]) == {*feats, "score"}
