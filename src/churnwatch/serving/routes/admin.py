"""Operations that change what is served: reloading the model."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from churnwatch.serving.deps import Key, Service
from churnwatch.serving.http_errors import errors
from churnwatch.tracking import MODEL_REF, REF_FORMS

router = APIRouter(tags=["ops"], dependencies=[Key])


@router.post("/admin/reload", responses=errors(401, 404, 503))
async def reload(
    service: Service,
    ref: Annotated[
        str | None,
        Query(
            description=f"{REF_FORMS}; default: the configured model.",
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
