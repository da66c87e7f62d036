"""Open to all, key or not: liveness, readiness, the model's description, Prometheus."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from churnwatch.serving.deps import Meter, Service
from churnwatch.serving.http_errors import errors
from churnwatch.serving.schemas import ModelResponse

router = APIRouter()


@router.get("/health", tags=["ops"], summary="Alive")
async def health() -> dict[str, str]:
    return {"status": "alive"}


@router.get("/ready", tags=["ops"], summary="Model and store loaded", responses=errors(503))
async def ready(service: Service) -> JSONResponse:
    live = service.live
    store = live is not None and live.population is not None
    body = {
        "model": live is not None,
        "store": store,
        "model_version": live.info.version if live else None,
        "problem": service.load_error,
    }
    ok = live is not None and (store or not service.store.exists())
    return JSONResponse({"ready": ok, **body}, status_code=200 if ok else 503)


@router.get("/model", tags=["model"], response_model=ModelResponse, responses=errors(503))
async def model(service: Service) -> dict[str, Any]:
    live = service.current()
    pop = live.population
    info = live.info
    population = None
    if pop is not None:
        population = {
            "as_of": pop.cutoff.isoformat(),
            "active_users": len(pop.frame),
            "computed_at": pop.computed_at,
            "seconds": round(pop.seconds, 3),
            "store_version": pop.store_version,
        }
    return {**info.__dict__, "aliases": list(info.aliases), "population": population}


@router.get(
    "/metrics",
    tags=["ops"],
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def prometheus(metrics: Meter) -> Response:
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
