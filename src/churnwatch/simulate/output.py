"""Writing the simulated events: the Sparkify-schema table and its JSON lines."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
from isal import isal_zlib

from churnwatch.simulate.world import PAGES, P, Users

_PUT_PAGES = (
    "NextSong", "Thumbs Up", "Thumbs Down", "Add to Playlist", "Add Friend", "Save Settings",
    "Submit Upgrade", "Submit Downgrade", "Logout", "Cancel", "Login", "Submit Registration",
)  # fmt: skip

_METHOD = dict.fromkeys(_PUT_PAGES, "PUT")

_STATUS = {"Error": 404, "Submit Upgrade": 307, "Submit Downgrade": 307, "Logout": 307,
           "Cancel": 307, "Login": 307, "Submit Registration": 307,
           "Save Settings": 307}  # fmt: skip


def events_table(
    users: Users,
    catalog: dict[str, np.ndarray],
    uidx: np.ndarray,
    session: np.ndarray,
    pages: np.ndarray,
    ts_s: np.ndarray,
    rank: np.ndarray,
    level_paid: np.ndarray,
    song: np.ndarray,
) -> pa.Table:
    """The Sparkify-schema table of logged-in events (page names still as indices too)."""
    page_names = np.array(PAGES, dtype=object)[pages]
    method = np.array([_METHOD.get(p, "GET") for p in PAGES], dtype=object)[pages]
    status = np.array([_STATUS.get(p, 200) for p in PAGES], dtype=np.int64)[pages]
    auth = np.where(pages == P["Cancellation Confirmation"], "Cancelled", "Logged In")
    has_song = song >= 0
    safe = np.maximum(song, 0)
    return pa.table(
        {
            "ts": pa.array((ts_s * 1000).astype(np.int64)),
            "userId": pa.array(users.uid[uidx].astype(str)),
            "sessionId": pa.array(session.astype(np.int64)),
            "page": pa.array(page_names.astype(str)),
            "auth": pa.array(auth),
            "method": pa.array(method.astype(str)),
            "status": pa.array(status),
            "level": pa.array(np.where(level_paid, "paid", "free")),
            "itemInSession": pa.array(rank.astype(np.int64)),
            "location": pa.array(users.city[uidx].astype(str)),
            "userAgent": pa.array(users.agent[uidx].astype(str)),
            "lastName": pa.array(users.last[uidx].astype(str)),
            "firstName": pa.array(users.first[uidx].astype(str)),
            "registration": pa.array(users.reg_ms[uidx]),
            "gender": pa.array(users.gender[uidx].astype(str)),
            "artist": pa.array(catalog["artist"][safe].astype(str), mask=~has_song),
            "song": pa.array(catalog["song"][safe].astype(str), mask=~has_song),
            "length": pa.array(catalog["length"][safe], mask=~has_song),
            "page_idx": pa.array(pages.astype(np.int64)),
        }
    )


_ALWAYS = [
    "ts",
    "userId",
    "sessionId",
    "page",
    "auth",
    "method",
    "status",
    "level",
    "itemInSession",
]

_USER = ["location", "userAgent", "lastName", "firstName", "registration", "gender"]

_SONG = ["artist", "song", "length"]


def json_block(con: duckdb.DuckDBPyConnection, table: pa.Table, *, gz: bool) -> bytes:
    """The day's events as JSON lines, keys in Sparkify order and, as eventsim does, without
    the keys an event does not have (guests: no user fields; non-song pages: no song fields).
    Optionally one gzip member with mtime 0, so the same input gives the same bytes."""

    def obj(cols: list[str]) -> str:
        return "json_object(" + ", ".join(f"'{c}', \"{c}\"" for c in cols) + ")"

    con.register("day_tbl", table)
    col = (
        con.sql(
            f"""SELECT CASE WHEN "userId" = '' THEN {obj(_ALWAYS)}
                            WHEN song IS NULL THEN {obj(_ALWAYS + _USER)}
                            ELSE {obj(_ALWAYS + _USER + _SONG)} END || chr(10)
                FROM day_tbl"""
        )
        .to_arrow_table()
        .column(0)
        .combine_chunks()
    )
    con.unregister("day_tbl")
    body = concat_strings(col)
    if not gz:
        return body
    comp = isal_zlib.compressobj(2, isal_zlib.DEFLATED, 31)
    return bytes(comp.compress(body) + comp.flush())


def concat_strings(arr: pa.Array) -> bytes:
    """All values of a string array, back to back, read straight from its data buffer."""
    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.large_string())
    _, offsets_buf, data = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32 if arr.type == pa.string() else np.int64)
    start, end = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    return bytes(memoryview(data)[start:end])
