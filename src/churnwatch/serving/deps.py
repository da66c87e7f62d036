"""What the routes depend on, as `Annotated` dependencies: the service, the settings, the
metrics, and the key check. All async: they only read app state, so they run on the event
loop rather than in the threadpool."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPBasic, HTTPBasicCredentials

from churnwatch.config import Settings
from churnwatch.serving.metrics import Metrics
from churnwatch.serving.service import ChurnService

# Two ways to give the key, declared as alternative security schemes: a header for programs,
# HTTP basic auth (the key as password, any user name) for a browser on the dashboard.
API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="CHURNWATCH_API_KEY")
BASIC = HTTPBasic(auto_error=False, realm="churnwatch", description="the key as password")


async def _service(request: Request) -> ChurnService:
    service: ChurnService = request.app.state.service
    return service


async def _metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


Service = Annotated[ChurnService, Depends(_service)]
Meter = Annotated[Metrics, Depends(_metrics)]


async def _settings(service: Service) -> Settings:
    return service.settings


SettingsDep = Annotated[Settings, Depends(_settings)]


async def require_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Depends(API_KEY)] = None,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(BASIC)] = None,
) -> None:
    """With a key configured, user data and writes need it: as X-API-Key, or as the password
    of HTTP basic auth (what a browser sends for the dashboard). Compared in constant time."""
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


Key = Depends(require_key)
