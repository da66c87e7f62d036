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
    risk_set,
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


def test_kaplan_meier_with_delayed_entry_by_hand() -> None:
    # the same subjects; the two at 3 entered at day 2, so they were not at risk at day 1
    times, surv = kaplan_meier(
        np.array([1, 2, 3, 3, 5]), np.array([1, 0, 1, 1, 0]), entry=np.array([0, 0, 2, 2, 0])
    )
    assert times.tolist() == [1, 3]
    assert surv.tolist() == pytest.approx([2 / 3, 2 / 3 * (1 - 2 / 3)])
    entry = np.array([0, 0, 2, 2, 0])
    assert risk_set(np.array([1, 2, 3, 3, 5]), [0.5, 1, 3], entry).tolist() == [3, 3, 3]
    assert risk_set(np.array([1, 2, 3, 3, 5]), [0.5, 1, 3]).tolist() == [5, 5, 3]


def test_delayed_entry_undoes_left_truncation() -> None:
    """Subjects who churned before the observation window opened are missing from the data;
    counting the survivors from their signup as if always watched overstates survival, and
    delayed entry recovers the true curve (geometric, 1 % a day)."""
    rng = np.random.default_rng(1)
    n = 40_000
    signup = rng.integers(-300, 100, n)  # days relative to the window's opening at 0
    life = rng.geometric(0.01, n)
    end = signup + life
    seen = end > 0  # the others churned before the window opened: not in the log
    dur = np.minimum(end, 200)[seen] - signup[seen]
    ev = (end <= 200)[seen]
    entry = np.maximum(0, -signup[seen])
    truth = 0.99**100
    naive_t, naive_s = kaplan_meier(dur, ev)
    fixed_t, fixed_s = kaplan_meier(dur, ev, entry=entry)
    assert step(naive_t, naive_s, 100) > truth + 0.1
    assert step(fixed_t, fixed_s, 100) == pytest.approx(truth, abs=0.02)


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
