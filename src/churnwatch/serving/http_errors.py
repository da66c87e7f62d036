"""The one place churnwatch errors become HTTP answers: every error is JSON
`{"error", "message", "detail"}` with the status its kind calls for."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from churnwatch.errors import ChurnwatchError, InputError, StoreError
from churnwatch.serving.schemas import Problem
from churnwatch.serving.service import (
    NoModelError,
    NotActiveError,
    UnknownDayError,
    UnknownModelError,
    UnknownUserError,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[ChurnwatchError], int, str]] = [
    (UnknownUserError, 404, "unknown user"),
    (UnknownModelError, 404, "unknown model"),
    (UnknownDayError, 404, "no scores that day"),
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
    404: {"model": Problem, "description": "Unknown user or model, or no scores that day"},
    409: {"model": Problem, "description": "The user has churned under the model's definition"},
    413: {"model": Problem, "description": "Body larger than CHURNWATCH_MAX_BODY_BYTES"},
    422: {"model": Problem, "description": "Invalid request: the message names the field"},
    503: {"model": Problem, "description": "No model or no event store loaded"},
}
NAMES = {401: "unauthorised", 404: "not found", 405: "method not allowed", 413: "body too large"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route."""
    return {k: ERRORS[k] for k in codes}


def problem(status: int, error: str, message: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": error, "message": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


def _field(loc: Any) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def _unparsed(error: dict[str, Any]) -> str:
    """A body that is not JSON: what was expected, and where it stopped parsing (pydantic gives
    the character position as the error's location)."""
    at = [p for p in error.get("loc", ()) if isinstance(p, int)]
    where = f" at character {at[0]}" if at else ""
    reason = (error.get("ctx") or {}).get("error") or error.get("msg")
    return f"body: expected a JSON document. Got text that stops parsing{where} ({reason})"


async def _invalid(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, RequestValidationError):  # registered for this type only
        raise exc
    found = exc.errors()
    first = found[0] if found else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        detail = [{"field": "body", "message": first.get("msg"), "type": "json_invalid"}]
        return problem(422, "invalid request", _unparsed(first), detail)
    message = f"{_field(first.get('loc', ()))}: {first.get('msg')}"
    if len(found) > 1:
        message += f" (and {len(found) - 1} more)"
    detail = [
        {"field": _field(e.get("loc", ())), "message": e.get("msg"), "type": e.get("type")}
        for e in found[:20]
    ]
    return problem(422, "invalid request", message, detail)


async def _known(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, ChurnwatchError):  # registered for this type only
        raise exc
    for kind, status, error in STATUS:
        if isinstance(exc, kind):
            return problem(status, error, str(exc), exc.detail)
    return problem(422, "invalid input", str(exc))  # pragma: no cover - ChurnwatchError


async def _http(_: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):  # registered for this type only
        raise exc
    if exc.status_code == 400:  # FastAPI's "error parsing the body": an invalid request
        return problem(422, "invalid request", "body: expected a JSON document (UTF-8). Got "
                       f"bytes that do not parse: {exc.detail}")  # fmt: skip
    answer = problem(exc.status_code, NAMES.get(exc.status_code, "error"), str(exc.detail))
    answer.headers.update(getattr(exc, "headers", None) or {})  # Allow, WWW-Authenticate
    return answer


async def _bug(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return problem(500, "internal error", f"{type(exc).__name__}: {exc}")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into its JSON answer."""
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(ChurnwatchError, _known)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _bug)
