"""Operations that change what is served: reloading the model."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query

from churnwatch.serving.deps import Key, Service
from churnwatch.serving.http_errors import errors

# what a model reference looks like; anything else is refused by the schema (422)
MODEL_REF = r"^(models:/[^/@\s]+(@[^/@\s]+|/[0-9]+)|runs:/[0-9a-f]{8,64}/\S+)$"

router = APIRouter(tags=["ops"], dependencies=[Key])


@router.post("/admin/reload", responses=errors(401, 404, 503))
async def reload(
    service: Service,
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
