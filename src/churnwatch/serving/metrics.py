"""Prometheus metrics and the request body limit, as one pure ASGI middleware (a
BaseHTTPMiddleware would cost more per request than scoring a row)."""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
PROBABILITY_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0)


class Metrics:
    """One registry per app, so apps built in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "churnwatch_requests", "HTTP requests", ["method", "route", "status"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "churnwatch_request_seconds", "Time to answer a request", ["route"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.predictions = Histogram(
            "churnwatch_prediction_probability", "Churn probabilities returned",
            buckets=PROBABILITY_BUCKETS, registry=self.registry,
        )  # fmt: skip

    def observe_prediction(self, p: float) -> None:
        self.predictions.observe(p)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class TooLarge(HTTPException):
    """Raised while a body without a Content-Length is read past the limit; FastAPI passes
    HTTP exceptions from body reading through, so the app answers it like any 413."""


class MetricsMiddleware:
    def __init__(self, app: Any, metrics: Metrics, max_body: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body = max_body

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await self._too_large(send, length.decode("latin-1"))
            self._record(scope, 413, started)
            return
        seen = [0]

        async def counted() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > self.max_body:
                    raise TooLarge(413, f"expected a body of at most {self.max_body} bytes")
            return message

        async def sending(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, counted, sending)
        finally:
            self._record(scope, status[0], started)

    async def _too_large(self, send: Any, got: str) -> None:
        body = json.dumps(
            {
                "error": "body too large",
                "message": f"expected a body of at most {self.max_body} bytes. Got {got} bytes.",
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _record(self, scope: dict[str, Any], status: int, started: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.metrics.requests.labels(scope.get("method", ""), path, str(status)).inc()
        self.metrics.latency.labels(path).observe(time.perf_counter() - started)
