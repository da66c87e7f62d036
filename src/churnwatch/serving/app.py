"""The FastAPI application: `create_app(settings)` assembles it; routes validate and delegate
to `ChurnService`; only this module turns churnwatch errors into HTTP status codes."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials
from starlette.exceptions import HTTPException as StarletteHTTPException

from churnwatch import __version__
from churnwatch.config import Settings
from churnwatch.errors import ChurnwatchError, InputError, StoreError
from churnwatch.serving.metrics import Metrics, MetricsMiddleware
from churnwatch.serving.schemas import (
    AtRiskResponse,
    BatchItem,
    BatchRequest,
    BatchResponse,
    EventsRequest,
    EventsResponse,
    ModelResponse,
    Prediction,
    PredictRequest,
    Problem,
)
from churnwatch.serving.service import (
    ChurnService,
    NoModelError,
    NotActiveError,
    UnknownModelError,
    UnknownUserError,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[ChurnwatchError], int, str]] = [
    (UnknownUserError, 404, "unknown user"),
    (UnknownModelError, 404, "unknown model"),
    (NotActiveError, 409, "user not active"),
    (NoModelError, 503, "no model"),
    (StoreError, 503, "no event store"),
    (InputError, 422, "invalid input"),
    (ChurnwatchError, 422, "invalid input"),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {
        "model": Problem,
        "description": "A key is configured (CHURNWATCH_API_KEY) and the request did not carry "
        "it: send X-API-Key, or HTTP basic auth with the key as password",
    },
    404: {"model": Problem, "description": "Unknown user or model"},
    409: {"model": Problem, "description": "The user has churned under the model's definition"},
    413: {"model": Problem, "description": "Body larger than CHURNWATCH_MAX_BODY_BYTES"},
    422: {"model": Problem, "description": "Invalid request: the message names the field"},
    503: {"model": Problem, "description": "No model or no event store loaded"},
}
# what a model reference looks like; anything else is refused by the schema (422)
MODEL_REF = r"^(models:/[^/@\s]+(@[^/@\s]+|/[0-9]+)|runs:/[0-9a-f]{8,64}/\S+)$"


# Two ways to give the key, declared as alternative security schemes: a header for programs,
# HTTP basic auth (the key as password, any user name) for a browser on the dashboard.
# Module level, so that the handlers' annotations can name them.
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="CHURNWATCH_API_KEY")
BASIC = HTTPBasic(auto_error=False, realm="churnwatch", description="the key as password")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {k: ERRORS[k] for k in codes}


def problem(status: int, error: str, message: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def create_app(settings: Settings | None = None, *, load: bool = True) -> FastAPI:
    """The churnwatch API. With `load`, the model and the store are loaded at start-up."""
    settings = settings or Settings()
    service = ChurnService(settings)
    metrics = Metrics()

    async def poll() -> None:
        """Reload when the registry's alias points at another version (a promotion)."""
        while True:
            await asyncio.sleep(settings.reload_poll_seconds)
            try:
                if await asyncio.to_thread(service.champion_changed):
                    info = await asyncio.to_thread(service.load)
                    log.info("the champion changed: now serving version %s", info.version)
            except Exception as exc:  # keep serving the current model; try again later
                log.warning("champion check failed: %s", exc)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if load:
            try:
                await asyncio.to_thread(service.load)
            except ChurnwatchError as exc:
                log.error("started without a model: %s", exc)
        task = asyncio.create_task(poll()) if settings.reload_poll_seconds > 0 else None
        yield
        if task is not None:
            task.cancel()

    app = FastAPI(
        title="churnwatch",
        version=__version__,
        summary="Churn probabilities with their reasons, for music-streaming subscribers.",
        lifespan=lifespan,
        responses={422: ERRORS[422]},
    )
    app.state.service = service
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics, max_body=settings.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        message = f"{_field(first.get('loc', ()))}: {first.get('msg')}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        detail = [
            {"field": _field(e.get("loc", ())), "message": e.get("msg"), "type": e.get("type")}
            for e in errors[:20]
        ]
        return problem(422, "invalid request", message, detail)

    @app.exception_handler(ChurnwatchError)
    async def _known(_: Request, exc: ChurnwatchError) -> JSONResponse:
        for kind, status, error in STATUS:
            if isinstance(exc, kind):
                return problem(status, error, str(exc), exc.detail)
        return problem(422, "invalid input", str(exc))  # pragma: no cover - ChurnwatchError

    @app.exception_handler(Exception)
    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return problem(500, "internal error", f"{type(exc).__name__}: {exc}")

    def require_key(
        x_api_key: Annotated[str | None, Depends(API_KEY)] = None,
        credentials: Annotated[HTTPBasicCredentials | None, Depends(BASIC)] = None,
    ) -> None:
        """With a key configured, user data and writes need it: as X-API-Key, or as the
        password of HTTP basic auth (what a browser sends for the dashboard). Compared in
        constant time."""
        if settings.api_key is None:
            return
        expected = settings.api_key.get_secret_value().encode()
        given = [x_api_key, credentials.password if credentials else None]
        if not any(g is not None and secrets.compare_digest(g.encode(), expected) for g in given):
            raise HTTPException(
                401,
                "expected the API key: an X-API-Key header, or HTTP basic auth with the key as "
                "password",
                headers={"WWW-Authenticate": 'Basic realm="churnwatch"'},
            )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        names = {
            401: "unauthorised",
            404: "not found",
            405: "method not allowed",
            413: "body too large",
        }
        if exc.status_code == 400:  # FastAPI's "error parsing the body": an invalid request
            return problem(422, "invalid request", "body: expected a JSON document (UTF-8). Got "
                           f"bytes that do not parse: {exc.detail}")  # fmt: skip
        answer = problem(exc.status_code, names.get(exc.status_code, "error"), str(exc.detail))
        answer.headers.update(getattr(exc, "headers", None) or {})  # Allow, WWW-Authenticate
        return answer

    Key = Depends(require_key)

    @app.get("/health", tags=["ops"], summary="Alive")
    async def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready", tags=["ops"], summary="Model and store loaded", responses={503: ERRORS[503]})
    async def ready() -> JSONResponse:
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

    @app.get("/model", tags=["model"], response_model=ModelResponse, responses={503: ERRORS[503]})
    async def model() -> dict[str, Any]:
        live = service.current()
        pop = live.population
        info = live.info
        return {
            **info.__dict__,
            "aliases": list(info.aliases),
            "population": None
            if pop is None
            else {
                "as_of": pop.cutoff.isoformat(),
                "active_users": len(pop.frame),
                "computed_at": pop.computed_at,
                "seconds": round(pop.seconds, 3),
                "store_version": pop.store_version,
            },
        }

    @app.post(
        "/predict",
        tags=["predict"],
        response_model=Prediction,
        response_model_exclude_none=True,
        dependencies=[Key],
        responses=_errors(401, 404, 409, 413, 503),
    )
    async def predict(
        body: PredictRequest,
        explain: Annotated[bool, Query(description="Compute the reasons (SHAP).")] = True,
    ) -> Any:
        """Churn probability within the model's horizon, its risk band and the top reasons.

        By user_id, the answer comes from the scores of the whole population, computed when
        the model or the store changes; by features, the model runs on the payload."""
        if body.features is not None:  # SHAP off the event loop
            items = await asyncio.to_thread(service.predict_features, [body.features],
                                            explain=explain)  # fmt: skip
            item = items[0]
        elif body.as_of is not None:
            assert body.user_id is not None
            item = await asyncio.to_thread(service.predict_user, body.user_id, body.as_of)
        else:
            assert body.user_id is not None
            answer = service.answer_user(body.user_id)
            metrics.observe_prediction(service.last_probability(body.user_id))
            return Response(answer, media_type="application/json")
        metrics.observe_prediction(item["probability"])
        return item

    @app.post(
        "/predict/batch",
        tags=["predict"],
        response_model=BatchResponse,
        response_model_exclude_none=True,
        dependencies=[Key],
        responses=_errors(401, 413, 503),
    )
    def predict_batch(body: BatchRequest) -> dict[str, Any]:  # sync: runs in the threadpool
        """Up to CHURNWATCH_BATCH_LIMIT users or rows; an unknown user is an item with an
        error, not a failed batch."""
        n = len(body.user_ids or body.rows or [])
        if n > settings.batch_limit:
            raise InputError(f"expected at most {settings.batch_limit} users or rows. Got {n}.")
        items: list[BatchItem | dict[str, Any]] = []
        if body.rows is not None:
            for p in service.predict_features(list(body.rows)):
                items.append({"prediction": p})
        else:
            for user in body.user_ids or []:
                try:
                    items.append({"user_id": user, "prediction": service.predict_user(user)})
                except (UnknownUserError, NotActiveError) as exc:
                    items.append({"user_id": user, "error": str(exc)})
        for it in items:
            if isinstance(it, dict) and "prediction" in it:
                metrics.observe_prediction(it["prediction"]["probability"])
        return {"items": items}

    @app.get(
        "/users/at-risk", tags=["predict"], response_model=AtRiskResponse,
        response_model_exclude_none=True, dependencies=[Key], responses=_errors(401, 503),
    )  # fmt: skip
    def at_risk(  # sync: runs in the threadpool
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        min_probability: Annotated[float, Query(ge=0, le=1)] = 0.0,
    ) -> dict[str, Any]:
        """Active users ranked by churn probability, with their top three reasons."""
        return service.at_risk(limit, min_probability)

    @app.post(
        "/events",
        tags=["data"],
        response_model=EventsResponse,
        dependencies=[Key],
        responses=_errors(401, 413, 503),
    )
    async def events(body: EventsRequest) -> dict[str, Any]:
        """Append events to the store with the same checks and quarantine as `ingest`, then
        rescore, so scores reflect the fresh activity."""
        if len(body.events) > settings.events_limit:
            raise InputError(
                f"expected at most {settings.events_limit} events. Got {len(body.events)}."
            )
        return await asyncio.to_thread(service.append_events, body.events)

    @app.post(
        "/admin/reload",
        tags=["ops"],
        dependencies=[Key],
        responses=_errors(401, 404, 503),
    )
    async def reload(
        ref: Annotated[
            str | None,
            Query(
                description="models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH; "
                "default: the configured model.",
                pattern=MODEL_REF,
                max_length=500,
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Load the champion again (a promotion, say) and swap it in atomically: requests in
        flight finish on the old model, later ones get the new one. A reference the registry
        cannot load is a 404, and the current model keeps serving."""
        before = service.live.info.version if service.live else None
        info = await asyncio.to_thread(service.load, ref)
        return {"previous_version": before, "version": info.version, "ref": info.ref}

    from churnwatch.serving.dashboard import router as dashboard_router

    app.include_router(dashboard_router(service, Key))

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

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
