"""From a risk score to a retention plan: what each user is worth, what their leaving would
cost, and whom to contact within a budget.

- A user's **value** over the value period comes from the log: on an eventsim log, the price of
  their level (settings: `level_prices`, per 30 days); on any other log, their value per
  exposure day (the log's value column) or, without one, their events per exposure day times
  `event_value`.
- **Expected loss** = P(churn within the horizon) x value.
- Contacting a user costs the offer; the offer keeps a would-be churner with probability
  `save_rate`. The **expected net gain** of contacting them is P x value x save_rate - cost.
- The **plan** contacts users in order of expected net gain while it is positive and the
  budget lasts: the cutoff maximises the expected profit (as in Verbraken et al.'s Expected
  Maximum Profit), it is not a fixed probability threshold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churnwatch.config import Settings
from churnwatch.errors import ConfigError
from churnwatch.features.catalog import FeatureSpec


@dataclass(frozen=True)
class Offer:
    """A retention campaign's terms, in business words."""

    budget: float  # what the campaign may spend in all
    offer_cost: float  # what contacting one user costs (the discount, the call)
    save_rate: float  # the share of would-be churners an offer keeps
    period_days: int = 90  # a user's value is counted over this many days

    def __post_init__(self) -> None:
        if not (self.budget >= 0 and self.offer_cost > 0):
            raise ConfigError(
                f"expected a budget >= 0 and an offer cost > 0. Got budget {self.budget}, "
                f"offer cost {self.offer_cost}."
            )
        if not 0 < self.save_rate <= 1:
            raise ConfigError(f"save rate has to be in (0, 1]. Got {self.save_rate}.")
        if self.period_days < 1:
            raise ConfigError(f"value period has to be >= 1 day. Got {self.period_days}.")

    @property
    def max_contacts(self) -> int:
        """Users the budget pays for (bounded: a near-free offer is no licence to overflow)."""
        return int(min(self.budget / self.offer_cost, 1e12))


def user_value(
    frame: pd.DataFrame,
    spec: FeatureSpec,
    *,
    level_prices: Mapping[str, float],
    event_value: float,
    period_days: int,
) -> np.ndarray:
    """Each user's value over `period_days`, from the columns of their feature row."""
    if spec.kind == "sparkify":
        level = frame["level"] if "level" in frame else pd.Series("unknown", index=frame.index)
        monthly = level.map(lambda v: float(level_prices.get(str(v), 0.0))).to_numpy(float)
        return monthly * period_days / 30.0
    if spec.value and "value_per_exposure_day" in frame:
        daily = frame["value_per_exposure_day"].to_numpy(dtype=float)
    else:
        daily = frame["events_per_exposure_day"].to_numpy(dtype=float) * event_value
    return np.asarray(np.nan_to_num(daily, nan=0.0) * period_days, dtype=float)


def values_for(
    frame: pd.DataFrame, spec: FeatureSpec, settings: Settings, period_days: int
) -> np.ndarray:
    """`user_value` with the settings' level prices and event value."""
    return user_value(frame, spec, level_prices=settings.level_prices,
                      event_value=settings.event_value, period_days=period_days)  # fmt: skip


@dataclass
class Plan:
    """Every user with their figures, in the order the plan would contact them."""

    users: pd.DataFrame  # user_id, probability, value, expected_loss, expected_net_gain, contact
    offer: Offer

    @property
    def contacted(self) -> pd.DataFrame:
        return self.users[self.users["contact"]]

    def summary(self) -> dict[str, Any]:
        c = self.contacted
        saved = float((c["probability"] * c["value"]).sum() * self.offer.save_rate)
        cost = float(len(c) * self.offer.offer_cost)
        return {
            "users_scored": int(len(self.users)),
            "users_contacted": int(len(c)),
            "budget": self.offer.budget,
            "cost": cost,
            "expected_churners_reached": float(c["probability"].sum()),
            "expected_value_at_risk": float(self.users["expected_loss"].sum()),
            "expected_value_saved": saved,
            "expected_net": saved - cost,
        }

    def why_nobody(self) -> str | None:
        """Why the plan contacts no one, in words a user can act on; None when it contacts
        someone or there is no one to contact."""
        if len(self.contacted) or not len(self.users):
            return None
        o = self.offer
        if o.max_contacts == 0:
            return f"the budget {o.budget:,.2f} pays for no offer at {o.offer_cost:,.2f}."
        best = self.users.iloc[0]  # the order is by expected net gain: the best saving first
        saved = float(best["probability"] * best["value"] * o.save_rate)
        return (
            f"no user's expected saving exceeds the offer's cost: the best is {saved:,.2f} "
            f"(user {best['user_id']}: P(churn) {best['probability']:.1%}, value "
            f"{best['value']:,.2f} over {o.period_days} days, save rate {o.save_rate:.0%}) "
            f"against {o.offer_cost:,.2f}. A cheaper offer, a higher save rate or a longer "
            "value period changes that."
        )

    def curve(self, points: int = 200) -> list[dict[str, float]]:
        """Expected net gain against the number contacted, in plan order (the profit curve),
        at most `points` points; it ends where the budget does."""
        gain = self.users["expected_net_gain"].to_numpy(dtype=float)
        gain = gain[: min(len(gain), self.offer.max_contacts)]
        if not len(gain):
            return [{"contacted": 0, "expected_net": 0.0}]
        net = np.concatenate([[0.0], np.cumsum(gain)])
        at = np.unique(np.linspace(0, len(gain), min(points, len(gain) + 1)).round().astype(int))
        return [{"contacted": int(n), "expected_net": float(net[n])} for n in at]


def make_plan(user_ids: Any, probability: np.ndarray, value: np.ndarray, offer: Offer) -> Plan:
    """Contact users by expected net gain, while it is positive and the budget lasts."""
    p = np.asarray(probability, dtype=float)
    v = np.asarray(value, dtype=float)
    gain = p * v * offer.save_rate - offer.offer_cost
    users = pd.DataFrame(
        {"user_id": [str(u) for u in user_ids], "probability": p, "value": v,
         "expected_loss": p * v, "expected_net_gain": gain}
    )  # fmt: skip
    users = users.sort_values(
        ["expected_net_gain", "user_id"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)
    n = min(int((users["expected_net_gain"] > 0).sum()), offer.max_contacts)
    users["contact"] = np.arange(len(users)) < n
    return Plan(users=users, offer=offer)


def compare_targeting(
    rows: pd.DataFrame, offer: Offer, *, n_boot: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """Realised value saved, out of time, by the plan's targeting and by others contacting as
    many users: the highest probabilities, and users drawn at random.

    `rows`: one per user and campaign (cutoff), with `cutoff`, `user_id`, `probability` (out
    of time), `value` and `label` (did they churn within the horizon). A campaign saves
    label x value x save_rate for each user it contacts and pays the offer for each. The
    interval of the plan's gain over probability-only targeting is a paired bootstrap over
    the (user, campaign) rows, the selections held fixed.
    """
    plan_pick = np.zeros(len(rows), dtype=bool)
    prob_pick = np.zeros(len(rows), dtype=bool)
    random_saved = 0.0
    rng = np.random.default_rng(seed)
    y = rows["label"].to_numpy(dtype=float)
    v = rows["value"].to_numpy(dtype=float)
    saved_if = y * v * offer.save_rate
    for _, idx in rows.groupby("cutoff", sort=True).indices.items():
        part = rows.iloc[idx]
        plan = make_plan(np.asarray(idx), part["probability"].to_numpy(), part["value"].to_numpy(),
                         offer)  # fmt: skip
        chosen = plan.contacted["user_id"].astype(int).to_numpy()
        plan_pick[chosen] = True
        n = len(chosen)
        by_p = idx[np.argsort(-part["probability"].to_numpy(), kind="stable")[:n]]
        prob_pick[by_p] = True
        draws = (
            [saved_if[rng.choice(idx, n, replace=False)].sum() for _ in range(200)] if n else [0]
        )
        random_saved += float(np.mean(draws))
    cost = float(plan_pick.sum() * offer.offer_cost)
    diff = (plan_pick.astype(float) - prob_pick.astype(float)) * saved_if
    boots = np.array([diff[rng.integers(0, len(diff), len(diff))].sum() for _ in range(n_boot)])
    return {
        "campaigns": int(rows["cutoff"].nunique()),
        "contacted": int(plan_pick.sum()),
        "cost": cost,
        "plan_saved": float(saved_if[plan_pick].sum()),
        "probability_saved": float(saved_if[prob_pick].sum()),
        "random_saved": random_saved,
        "plan_minus_probability": float(diff.sum()),
        "plan_minus_probability_low": float(np.quantile(boots, 0.025)),
        "plan_minus_probability_high": float(np.quantile(boots, 0.975)),
    }
