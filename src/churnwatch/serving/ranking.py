"""Reading the live population as a retention team does: users ranked by risk or by value at
risk, and the retention plan (models.plan) over them."""

from __future__ import annotations

from typing import Any

import numpy as np

from churnwatch.models.plan import Offer, make_plan, values_for
from churnwatch.serving.service import ChurnService, Live, Population, clean, row_at

VALUE_PERIOD_DAYS = 90  # what /users/at-risk counts a user's value over


def values(service: ChurnService, live: Live, pop: Population, period_days: int) -> np.ndarray:
    """Every active user's value over `period_days` (models.plan.user_value)."""
    return values_for(pop.frame, live.info.recipe.spec, service.settings, period_days)


def at_risk(
    service: ChurnService, limit: int, min_probability: float, sort: str = "probability"
) -> dict[str, Any]:
    """Active users by churn probability (or by expected loss), with value and reasons."""
    live, pop = service.population()
    value = values(service, live, pop, VALUE_PERIOD_DAYS)
    loss = pop.probability * value
    key = loss if sort == "expected_loss" else pop.probability
    rows: list[dict[str, Any]] = []
    for i in np.argsort(-key, kind="stable"):
        p = float(pop.probability[i])
        if len(rows) >= limit:
            break
        if p < min_probability:
            continue
        row = row_at(pop.frame, i)
        c = pop.contributions[i] if pop.contributions is not None else None
        item = service.explain_row(live, row, p, c)
        item["reasons"] = item["reasons"][:3]
        rows.append({
            "user_id": str(pop.frame.index[i]), **item, "level": row.get("level"),
            "tenure_days": clean(row.get("tenure_days")), "state": row.get("state"),
            "recency_days": clean(row.get("recency_days")), "value": float(value[i]),
            "expected_loss": float(loss[i]),
        })  # fmt: skip
    return {"as_of": pop.cutoff, "active_users": len(pop.frame),
            "model_version": live.info.version, "users": rows}  # fmt: skip


def plan(service: ChurnService, offer: Offer, limit: int) -> dict[str, Any]:
    """A retention plan over the live population, the first `limit` users to contact with
    their reasons, and the profit curve."""
    live, pop = service.population()
    value = values(service, live, pop, offer.period_days)
    made = make_plan(pop.frame.index, pop.probability, value, offer)
    users = []
    for row in made.contacted.head(limit).to_dict("records"):
        i = pop.position[str(row["user_id"])]
        c = pop.contributions[i] if pop.contributions is not None else None
        p = float(row["probability"])
        reasons = service.explain_row(live, row_at(pop.frame, i), p, c)["reasons"][:3]
        keep = ("user_id", "probability", "value", "expected_loss", "expected_net_gain")
        users.append({**{k: row[k] for k in keep}, "reasons": reasons})
    return {"as_of": pop.cutoff, "model_version": live.info.version, **made.summary(),
            "users": users, "curve": made.curve(), "why_nobody": made.why_nobody()}  # fmt: skip
