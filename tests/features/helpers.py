"""Hand-made event logs, written as Sparkify JSON lines and ingested into a fresh store."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa

from churnwatch.config import Settings
from churnwatch.features import feature_names
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


def assert_same_features(
    a: pa.Table, b: pa.Table, *, rel: float = 1e-9, names: list[str] | None = None
) -> None:
    """Same rows (user, cutoff) and every feature (`names`, default eventsim's) equal
    (numbers within `rel`)."""
    assert a.num_rows == b.num_rows > 0
    ra = {(r["user_id"], r["cutoff"]): r for r in a.to_pylist()}
    rb = {(r["user_id"], r["cutoff"]): r for r in b.to_pylist()}
    assert ra.keys() == rb.keys()
    for key, row in ra.items():
        other = rb[key]
        for name in names or feature_names():
            x, y = row[name], other[name]
            if isinstance(x, float) and isinstance(y, float):
                assert math.isclose(x, y, rel_tol=rel, abs_tol=1e-12), (key, name, x, y)
            else:
                assert x == y, (key, name, x, y)
