"""Fresh activity: raw events in, checked like `churnwatch ingest`, scores refreshed."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from churnwatch.errors import InputError
from churnwatch.serving.deps import Key, Service
from churnwatch.serving.http_errors import errors
from churnwatch.serving.schemas import EventsRequest, EventsResponse

router = APIRouter(tags=["data"], dependencies=[Key])


@router.post("/events", response_model=EventsResponse, responses=errors(401, 413, 503))
async def events(body: EventsRequest, service: Service) -> dict[str, Any]:
    """Append events to the store with the same checks and quarantine as `ingest`, then
    rescore, so scores reflect the fresh activity."""
    limit = service.settings.events_limit
    if len(body.events) > limit:
        raise InputError(f"expected at most {limit} events. Got {len(body.events)}.")
    answer: dict[str, Any] = await asyncio.to_thread(
        service.append_events, body.events, columns=body.columns
    )
    return answer
