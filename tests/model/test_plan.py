"""The retention plan: values from the log, expected loss, a budget-bound, profit-maximising
list, and its realised value against probability-only and random targeting."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnwatch.errors import ConfigError
from churnwatch.features.catalog import FeatureSpec
from churnwatch.models.plan import Offer, compare_targeting, make_plan, user_value


def test_values_come_from_the_level_or_the_value_column() -> None:
    frame = pd.DataFrame({"level": ["paid", "free", "unknown"]})
    v = user_value(frame, FeatureSpec(), level_prices={"paid": 10.0, "free": 1.0},
                   event_value=1.0, period_days=60)  # fmt: skip
    assert v.tolist() == [20.0, 2.0, 0.0]
    spec = FeatureSpec(kind="events", events=("purchase",), value=True, windows=(30, 90, 180))
    frame = pd.DataFrame(
        {"value_per_exposure_day": [0.5, np.nan], "events_per_exposure_day": [1, 2]}
    )
    got = user_value(frame, spec, level_prices={}, event_value=3.0, period_days=10)
    assert got.tolist() == [5.0, 0.0]
    plain = FeatureSpec(kind="events", events=("open",), value=False, windows=(7, 14, 28))
    got = user_value(frame, plain, level_prices={}, event_value=3.0, period_days=10)
    assert got.tolist() == [30.0, 60.0]


def test_the_plan_contacts_by_expected_net_gain_within_the_budget() -> None:
    offer = Offer(budget=25.0, offer_cost=10.0, save_rate=0.5)
    p = np.array([0.9, 0.5, 0.2, 0.9])
    v = np.array([10.0, 100.0, 100.0, 30.0])
    plan = make_plan(["a", "b", "c", "d"], p, v, offer)
    # net gains: a -5.5, b 15, c 0, d 3.5: b then d (c gains nothing, a loses)
    assert plan.users["user_id"].tolist()[:2] == ["b", "d"]
    assert plan.contacted["user_id"].tolist() == ["b", "d"]  # the budget allows 2 anyway
    s = plan.summary()
    assert s["users_contacted"] == 2 and s["cost"] == 20.0
    assert s["expected_net"] == pytest.approx(15 + 3.5)
    assert s["expected_value_at_risk"] == pytest.approx(0.9 * 10 + 50 + 20 + 27)
    small = make_plan(
        ["a", "b", "c", "d"], p, v, Offer(budget=10.0, offer_cost=10.0, save_rate=0.5)
    )
    assert small.contacted["user_id"].tolist() == ["b"]
    curve = plan.curve()
    assert [c["contacted"] for c in curve] == [0, 1, 2] and curve[-1]["expected_net"] == 18.5
    assert plan.why_nobody() is None


def test_a_plan_that_contacts_no_one_says_why_and_what_would_change_it() -> None:
    p, v = np.array([0.2, 0.5]), np.array([100.0, 20.0])
    dear = make_plan(["a", "b"], p, v, Offer(budget=100.0, offer_cost=6.0, save_rate=0.25))
    # the best saving: a, 0.2 x 100 x 0.25 = 5.00 < 6.00
    assert dear.contacted.empty
    why = dear.why_nobody()
    assert why is not None and "the best is 5.00 (user a" in why and "against 6.00" in why
    poor = make_plan(["a", "b"], p, v, Offer(budget=3.0, offer_cost=4.0, save_rate=0.25))
    assert poor.why_nobody() == "the budget 3.00 pays for no offer at 4.00."
    assert make_plan([], np.array([]), np.array([]), Offer(10.0, 1.0, 0.5)).why_nobody() is None


@pytest.mark.parametrize(
    "kwargs", [{"offer_cost": 0.0}, {"save_rate": 1.5}, {"budget": -1.0}, {"period_days": 0}]
)
def test_bad_terms_say_what_was_expected(kwargs: dict[str, float]) -> None:
    terms = {"budget": 100.0, "offer_cost": 5.0, "save_rate": 0.3, **kwargs}
    with pytest.raises(ConfigError, match="expected|has to be"):
        Offer(**terms)  # type: ignore[arg-type]


def test_value_aware_targeting_saves_more_than_probability_alone() -> None:
    """Churners are found by probability alike, but a few users are worth much more: the plan
    goes to them, probability-only targeting does not, random targeting least of all."""
    rng = np.random.default_rng(1)
    n = 4000
    rows = pd.DataFrame({
        "cutoff": np.repeat(["w1", "w2"], n // 2),
        "user_id": np.arange(n),
        "probability": rng.beta(1, 8, n),
        "value": np.where(rng.random(n) < 0.2, 50.0, 2.0),
    })  # fmt: skip
    rows["label"] = (rng.random(n) < rows["probability"]).astype(int)
    got = compare_targeting(rows, Offer(budget=400.0, offer_cost=2.0, save_rate=0.5), n_boot=300)
    assert got["contacted"] == 400 and got["campaigns"] == 2
    assert got["plan_saved"] > got["probability_saved"] > got["random_saved"]
    assert got["plan_minus_probability_low"] > 0
