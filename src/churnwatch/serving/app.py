"""The FastAPI application: `create_app(settings)` assembles it. Routes (`serving/routes/`)
validate and delegate to `ChurnService`; `http_errors` is the one place errors become HTTP
answers; `deps` holds what routes depend on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from churnwatch import __version__
from churnwatch.config import Settings
from churnwatch.errors import ChurnwatchError
from churnwatch.serving import http_errors
from churnwatch.serving.metrics import Metrics, MetricsMiddleware
from churnwatch.serving.routes import admin, dashboard, events, ops, predict
from churnwatch.serving.service import ChurnService

log = logging.getLogger(__name__)


async def _poll(service: ChurnService, seconds: float) -> None:
    """Reload when the registry's alias points at another version (a promotion)."""
    while True:
        await asyncio.sleep(seconds)
        try:
            if await asyncio.to_thread(service.champion_changed):
                info = await asyncio.to_thread(service.load)
                log.info("the champion changed: now serving version %s", info.version)
        except Exception as exc:  # keep serving the current model; try again later
            log.warning("champion check failed: %s", exc)


def create_app(settings: Settings | None = None, *, load: bool = True) -> FastAPI:
    """The churnwatch API. With `load`, the model and the store are loaded at start-up."""
    settings = settings or Settings()
    service = ChurnService(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if load:
            try:
                await asyncio.to_thread(service.load)
            except ChurnwatchError as exc:
                log.error("started without a model: %s", exc)
        seconds = settings.reload_poll_seconds
        task = asyncio.create_task(_poll(service, seconds)) if seconds > 0 else None
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(
        title="churnwatch",
        version=__version__,
        summary="Churn probabilities with their reasons, for music-streaming subscribers.",
        lifespan=lifespan,
        responses=http_errors.errors(422),
    )
    app.state.service = service
    app.state.metrics = Metrics()
    app.add_middleware(
        MetricsMiddleware, metrics=app.state.metrics, max_body=settings.max_body_bytes
    )
    http_errors.install(app)
    for module in (ops, predict, events, admin, dashboard):
        app.include_router(module.router)
    app.openapi = lambda: live_openapi(app, service)  # type: ignore[method-assign]
    return app


def live_openapi(app: FastAPI, service: ChurnService) -> dict[str, Any]:
    """The OpenAPI document, with the served model's features in the request schemas: their
    names (no others) and types (numbers, or strings for categories; null or absent is
    imputed). Rebuilt when another model is served."""
    live = service.live
    version = live.info.version if live is not None else None
    if app.openapi_schema is not None and getattr(app.state, "openapi_for", None) == version:
        return app.openapi_schema
    app.openapi_schema = None
    schema = FastAPI.openapi(app)
    if live is not None:
        features = live.check.model.model_json_schema()
        features["description"] = "The served model's features (GET /model lists them)."
        parts = schema["components"]["schemas"]
        parts["Features"] = features
        ref = {"$ref": "#/components/schemas/Features"}
        parts["PredictRequest"]["properties"]["features"] = ref
        parts["BatchRequest"]["properties"]["rows"]["items"] = ref
    app.openapi_schema = schema
    app.state.openapi_for = version
    return schema
