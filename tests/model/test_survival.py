"""Risk at any horizon from the served probability, and the survival metrics that judge it:
checked against cases worked by hand and against simulated constant-hazard users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnwatch.models.survival import (
    auc_at,
    brier_at,
    durations,
    integrated_brier,
    kaplan_meier,
    median_days,
    risk_at,
    step,
    survival_view,
)


def test_risk_at_any_horizon_follows_a_constant_hazard() -> None:
    p = np.array([0.0, 0.1, 0.5])
    assert np.allclose(risk_at(p, 14, 14), p)
    assert np.allclose(risk_at(p, 14, 28), 1 - (1 - p) ** 2)
    assert risk_at(np.array([0.3]), 14, 7)[0] < 0.3 < risk_at(np.array([0.3]), 14, 30)[0]
    assert median_days(np.array([0.5]), 14)[0] == pytest.approx(14)
    assert np.isnan(median_days(np.array([0.0]), 14)[0])
    view = survival_view(0.5, 14)
    assert view["14d"] == pytest.approx(0.5) and view["median_days_to_churn"] == pytest.approx(14)
    assert list(view) == ["7d", "14d", "30d", "60d", "median_days_to_churn"]


def test_kaplan_meier_by_hand() -> None:
    # durations 1, 2 (censored), 3, 3, 5 (censored)
    times, surv = kaplan_meier(np.array([1, 2, 3, 3, 5]), np.array([1, 0, 1, 1, 0]))
    assert times.tolist() == [1, 3]
    assert surv.tolist() == pytest.approx([4 / 5, 4 / 5 * (1 - 2 / 3)])
    assert step(times, surv, [0.5, 1, 2.9, 3, 9]).tolist() == pytest.approx(
        [1, 0.8, 0.8, 0.8 / 3, 0.8 / 3]
    )


def test_metrics_reward_the_true_hazard_over_a_flat_curve() -> None:
    rng = np.random.default_rng(0)
    n = 5000
    hazard = rng.uniform(0.002, 0.05, n)
    t_event = rng.geometric(hazard)
    t_cens = rng.integers(20, 90, n)
    dur = np.minimum(t_event, t_cens).astype(float)
    ev = t_event <= t_cens
    p14 = 1 - (1 - hazard) ** 14
    days = [1, 7, 14, 30, 45]
    model = [1 - risk_at(p14, 14, t) for t in days]
    km_t, km_s = kaplan_meier(dur, ev)
    flat = [np.full(n, step(km_t, km_s, t)) for t in days]
    assert integrated_brier(model, days, dur, ev) < integrated_brier(flat, days, dur, ev)
    assert auc_at(p14, dur, ev, 14) > 0.65
    assert auc_at(rng.random(n), dur, ev, 14) == pytest.approx(0.5, abs=0.03)
    # a perfect survival prediction at t has a Brier score near 0
    known = (dur > 14).astype(float)
    assert brier_at(known, dur, ev, 14) < 0.02


def test_durations_count_days_from_the_cutoff() -> None:
    rows = pd.DataFrame({"user_id": ["a", "a", "b"], "cutoff_day": [10, 20, 10]})
    churn = pd.Series({"a": 15})
    dur, ev = durations(rows, churn, data_end_day=40)
    assert dur.tolist() == [6, 21, 31] and ev.tolist() == [True, False, False]
