"""Scores: one user or a payload, a batch, and the users most at risk."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from churnwatch.errors import InputError
from churnwatch.models.plan import Offer
from churnwatch.serving import ranking
from churnwatch.serving.deps import Key, Meter, Service
from churnwatch.serving.http_errors import errors
from churnwatch.serving.schemas import (
    AtRiskResponse,
    BatchItem,
    BatchRequest,
    BatchResponse,
    PlanRequest,
    PlanResponse,
    Prediction,
    PredictRequest,
)
from churnwatch.serving.service import NotActiveError, UnknownUserError

router = APIRouter(tags=["predict"], dependencies=[Key])


@router.post(
    "/predict",
    response_model=Prediction,
    response_model_exclude_none=True,
    responses=errors(401, 404, 409, 413, 503),
)
async def predict(
    body: PredictRequest,
    service: Service,
    metrics: Meter,
    explain: Annotated[bool, Query(description="Compute the reasons (SHAP).")] = True,
) -> Any:
    """Churn probability within the model's horizon, its risk band and the top reasons.

    By user_id, the answer comes from the scores of the whole population, computed when the
    model or the store changes; by features, the model runs on the payload."""
    if body.features is not None:  # SHAP off the event loop
        items = await asyncio.to_thread(service.predict_features, [body.features],
                                        explain=explain)  # fmt: skip
        item = items[0]
    elif body.as_of is not None:
        item = await asyncio.to_thread(service.predict_user, body.user_id, body.as_of)
    else:
        answer = service.answer_user(body.user_id)
        metrics.observe_prediction(service.last_probability(body.user_id))
        return Response(answer, media_type="application/json")
    metrics.observe_prediction(item["probability"])
    return item


@router.post(
    "/predict/batch",
    response_model=BatchResponse,
    response_model_exclude_none=True,
    responses=errors(401, 413, 503),
)
def predict_batch(body: BatchRequest, service: Service, metrics: Meter) -> dict[str, Any]:
    """Up to CHURNWATCH_BATCH_LIMIT users or rows; an unknown user is an item with an error,
    not a failed batch. Sync: it runs in the threadpool."""
    limit = service.settings.batch_limit
    n = len(body.user_ids or body.rows or [])
    if n > limit:
        raise InputError(f"expected at most {limit} users or rows. Got {n}.")
    items: list[BatchItem | dict[str, Any]] = []
    if body.rows is not None:
        items = [{"prediction": p} for p in service.predict_features(list(body.rows))]
    else:
        for user in body.user_ids:
            try:
                items.append({"user_id": user, "prediction": service.predict_user(user)})
            except (UnknownUserError, NotActiveError) as exc:
                items.append({"user_id": user, "error": str(exc)})
    for it in items:
        if isinstance(it, dict) and "prediction" in it:
            metrics.observe_prediction(it["prediction"]["probability"])
    return {"items": items}


@router.get(
    "/users/at-risk",
    response_model=AtRiskResponse,
    response_model_exclude_none=True,
    responses=errors(401, 503),
)
def at_risk(
    service: Service,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    min_probability: Annotated[float, Query(ge=0, le=1)] = 0.0,
    sort: Annotated[Literal["probability", "expected_loss"], Query()] = "probability",
) -> dict[str, Any]:
    """Active users ranked by churn probability (or by expected loss: probability x value over
    90 days), with their value and top three reasons. Sync: it runs in the threadpool."""
    return ranking.at_risk(service, limit, min_probability, sort)


@router.post(
    "/plan",
    response_model=PlanResponse,
    responses=errors(401, 422, 503),
)
def plan(body: PlanRequest, service: Service) -> dict[str, Any]:
    """A retention plan: the users to contact within the budget, in order of expected net gain
    (P(churn) x value x save rate - offer cost), and the profit curve. Sync: threadpool."""
    offer = Offer(budget=float(body.budget), offer_cost=float(body.offer_cost),
                  save_rate=float(body.save_rate), period_days=body.period_days)  # fmt: skip
    return ranking.plan(service, offer, body.limit)
