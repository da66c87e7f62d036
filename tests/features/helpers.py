"""Hand-made event logs, written as Sparkify JSON lines and ingested into a fresh store."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from churnwatch.config import Settings
from churnwatch.ingest import EventStore, ingest

D0 = date(2020, 1, 1)


def at(day: int, hour: float = 12.0) -> int:
    """Epoch ms of day `day` after D0 at `hour` UTC."""
    t = datetime(D0.year, D0.month, D0.day, tzinfo=UTC) + timedelta(days=day, hours=hour)
    return int(t.timestamp() * 1000)


def event(
    user: str, day: int, page: str = "NextSong", *, hour: float = 12.0, **extra: Any
) -> dict[str, Any]:
    e: dict[str, Any] = {
        "ts": at(day, hour),
        "userId": user,
        "sessionId": int(day * 100 + hour),
        "page": page,
        "auth": "Cancelled" if page == "Cancellation Confirmation" else "Logged In",
        "method": "PUT",
        "status": 200,
        "level": "free",
        "itemInSession": 0,
        "location": "Tucson, AZ",
        "userAgent": "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0",
        "registration": at(-10, 0),
        "gender": "M",
    }
    if page == "NextSong":
        e.update(artist=f"Artist {day % 3}", song=f"Song {day}", length=200.0)
    e.update(extra)
    return e


def make_store(tmp: Path, events: list[dict[str, Any]]) -> EventStore:
    log = tmp / "log.jsonl"
    # distinct item numbers within a session keep repeated events distinct
    for i, e in enumerate(events):
        e.setdefault("itemInSession", i)
        e["itemInSession"] = i
    log.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    settings = Settings(store_dir=tmp / "store")
    ingest([log], settings=settings)
    return EventStore(tmp / "store")


def cutoff(day: int) -> date:
    return D0 + timedelta(days=day)
