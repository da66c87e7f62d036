"""The event store: Parquet files partitioned by event date, made consistent by a manifest.

Layout under the store root:

    _manifest.json                      the committed state: every live file, every ingest run
    events/event_date=YYYY-MM-DD/*.parquet   valid user events
    guests/event_date=YYYY-MM-DD/*.parquet   valid guest / logged-out events (empty user id)
    quarantine/<run id>.jsonl           rejected rows of one ingest, with their reasons
    _staging/<run id>/                  work in progress of a running ingest

Readers see only the files the manifest lists. An ingest writes its files first, then replaces
the manifest in one atomic rename: a crash at any point leaves the previous state whole, and the
next ingest sweeps what the crashed one left behind. One writer at a time (a lock file).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from churnwatch.db import event_files
from churnwatch.errors import StoreError
from churnwatch.schema import ColumnMapping

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
STAGING = "_staging"
FILE_KINDS = ("events", "guests")
FORMAT_VERSION = 1


@dataclass
class Manifest:
    """The committed state of a store."""

    version: int = 0
    files: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {k: [] for k in FILE_KINDS}
    )
    ingests: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "version": self.version,
            "files": self.files,
            "ingests": self.ingests,
        }


class EventStore:
    """A directory of Parquet event files plus the manifest that says which are live."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # reading -----------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def manifest(self) -> Manifest:
        if not self.exists():
            return Manifest()
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise StoreError(
                f"the store manifest {self.manifest_path} is unreadable: {exc}"
            ) from exc
        if data.get("format") != FORMAT_VERSION:
            raise StoreError(
                f"store format has to be {FORMAT_VERSION}. Got {data.get('format')!r} "
                f"in {self.manifest_path}."
            )
        return Manifest(version=data["version"], files=data["files"], ingests=data["ingests"])

    def files(self, kind: str = "events", *, dates: set[date] | None = None) -> list[str]:
        """Absolute paths of the live files of `kind`, optionally only those of some dates."""
        entries = self.manifest().files.get(kind, [])
        keep = [e for e in entries if dates is None or date.fromisoformat(e["date"]) in dates]
        return [str(self.root / e["path"]) for e in keep]

    def last_event(self) -> datetime:
        """The time of the latest event ingested (from the manifest, without a scan)."""
        return max(self._stamps("last_ts")).to_pydatetime()

    def first_event(self) -> datetime:
        """The time of the earliest event ingested (from the manifest, without a scan)."""
        return min(self._stamps("first_ts")).to_pydatetime()

    def _stamps(self, key: str) -> list[pd.Timestamp]:
        stamps = [i.get(key) for i in self.manifest().ingests if i.get(key)]
        if not stamps:
            self.require()
            raise StoreError(f"expected ingests with events in {self.root}. Got none.")
        return [pd.Timestamp(str(s)) for s in stamps]

    def mapping(self) -> ColumnMapping | None:
        """How the latest ingest of the feed's files that stored events read them: a later log
        of the same feed (`retrain --data`, `evaluate`) is read the same way. None when no
        ingest says (events posted to the API, or a churnwatch before ingests recorded it)."""
        for record in reversed(self.manifest().ingests if self.exists() else []):
            if record.get("valid") and record.get("mapping") is not None:
                return ColumnMapping.from_record(record["mapping"])
        return None

    def users(self) -> int:
        """Distinct users among the stored events (a scan of one column). The manifest's
        per-ingest counts cannot give it: a user seen by ten ingests is counted ten times."""
        files = self.files("events")
        if not files:
            return 0
        with duckdb.connect() as con:
            sql = f"SELECT count(DISTINCT user_id) FROM {event_files(files)}"
            row = con.execute(sql).fetchone()
        return int(row[0]) if row else 0

    def holds_page(self, *pages: str) -> bool:
        """Whether any stored event is one of `pages` (a scan of one column)."""
        files = self.files("events")
        if not files:
            return False
        with duckdb.connect() as con:
            sql = f"SELECT 1 FROM {event_files(files)} WHERE page IN ? LIMIT 1"
            return con.execute(sql, [list(pages)]).fetchone() is not None

    def require(self) -> None:
        """Raise a clear error when there is no store at `root`."""
        if not self.exists() or not self.files("events"):
            raise StoreError(
                f"expected an event store with events at {self.root}. Got "
                f"{'an empty store' if self.exists() else 'no store'}: "
                "run `churnwatch ingest` first."
            )

    def register(self, con: duckdb.DuckDBPyConnection, *, name: str = "events") -> None:
        """Create view `name` over the live events, with registration imputed and flagged.

        A missing registration becomes the registration the user's other events carry, or
        failing that the user's first event time; `registration_imputed` is true on such rows.
        """
        self.require()
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name}_raw AS "
            f"SELECT * FROM {event_files(self.files('events'))}"
        )
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW {name} AS
            SELECT r.* REPLACE (coalesce(r.registration, f.known, f.first_ts) AS registration),
                   r.registration IS NULL AS registration_imputed
            FROM {name}_raw r
            LEFT JOIN (SELECT user_id, min(registration) AS known, min(ts) AS first_ts
                       FROM {name}_raw GROUP BY user_id
                       HAVING bool_or(registration IS NULL)) f USING (user_id)"""
        )

    # writing -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def writer(self, run_id: str) -> Iterator[StoreTransaction]:
        """Hold the store's write lock and give a transaction; commit is explicit."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock_path = self.root / ".lock"
        with lock_path.open("a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise StoreError(
                    f"the store {self.root} is being written by another process; try again later"
                ) from exc
            self._sweep()
            txn = StoreTransaction(self, run_id)
            try:
                yield txn
            finally:
                shutil.rmtree(txn.staging, ignore_errors=True)
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _sweep(self) -> None:
        """Remove what a crashed writer left: staging folders and files no manifest lists."""
        shutil.rmtree(self.root / STAGING, ignore_errors=True)
        live = {e["path"] for k in FILE_KINDS for e in self.manifest().files.get(k, [])}
        for kind in FILE_KINDS:
            base = self.root / kind
            if not base.is_dir():
                continue
            for path in base.rglob("*.parquet"):
                if path.relative_to(self.root).as_posix() not in live:
                    log.warning("removing %s, left by an ingest that did not finish", path)
                    path.unlink()


class StoreTransaction:
    """Files staged by one ingest, made live all at once by `commit`."""

    def __init__(self, store: EventStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.staging = store.root / STAGING / run_id
        self.staging.mkdir(parents=True, exist_ok=True)

    def commit(
        self,
        new_files: dict[str, list[Path]],
        record: dict[str, Any],
        *,
        con: duckdb.DuckDBPyConnection,
    ) -> None:
        """Move staged partition files into place and atomically publish the new manifest."""
        manifest = self.store.manifest()
        for kind, paths in new_files.items():
            for staged in paths:
                rel = staged.relative_to(self.staging / kind)
                final = self.store.root / kind / rel
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, final)
                rows = con.execute(
                    "SELECT count(*) FROM read_parquet($f)", {"f": str(final)}
                ).fetchall()[0][0]
                day = rel.parts[0].split("=", 1)[1]
                manifest.files.setdefault(kind, []).append(
                    {
                        "path": final.relative_to(self.store.root).as_posix(),
                        "rows": rows,
                        "date": day,
                    }
                )
        _crash_point("before_manifest")
        manifest.version += 1
        manifest.ingests.append(record)
        tmp = self.store.root / f"{MANIFEST}.{self.run_id}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(manifest.to_json(), fh, indent=1, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.store.manifest_path)


def _crash_point(name: str) -> None:
    """Testing hook: `_CHURNWATCH_CRASH_AT=<name>` kills the process here, as a power cut
    would. Used by the test that proves a crash mid-ingest leaves the store whole."""
    if os.environ.get("_CHURNWATCH_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
