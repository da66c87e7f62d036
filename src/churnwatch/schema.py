"""The canonical event schema and the mapping from source columns onto it.

Canonical names are snake_case (see DESIGN.md). A source log names its columns its own way:
Sparkify / eventsim logs use camelCase (`userId`, `sessionId`), other logs anything at all. A
`ColumnMapping` says, for each canonical field, which source column holds it.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, Literal

from churnwatch.errors import MappingError

TsUnit = Literal["ms", "s", "us", "iso"]

# canonical name -> (DuckDB type, Sparkify / eventsim source name)
FIELDS: dict[str, tuple[str, str]] = {
    "ts": ("TIMESTAMPTZ", "ts"),
    "user_id": ("VARCHAR", "userId"),
    "session_id": ("BIGINT", "sessionId"),
    "page": ("VARCHAR", "page"),
    "auth": ("VARCHAR", "auth"),
    "method": ("VARCHAR", "method"),
    "status": ("INTEGER", "status"),
    "level": ("VARCHAR", "level"),
    "item_in_session": ("INTEGER", "itemInSession"),
    "location": ("VARCHAR", "location"),
    "user_agent": ("VARCHAR", "userAgent"),
    "first_name": ("VARCHAR", "firstName"),
    "last_name": ("VARCHAR", "lastName"),
    "registration": ("TIMESTAMPTZ", "registration"),
    "gender": ("VARCHAR", "gender"),
    "artist": ("VARCHAR", "artist"),
    "song": ("VARCHAR", "song"),
    "length": ("DOUBLE", "length"),
    "value": ("DOUBLE", "value"),  # a number the event carries: an amount, a quantity
}
REQUIRED: tuple[str, ...] = ("user_id", "ts", "page")
SPARKIFY_NAMES: dict[str, str] = {name: source for name, (_, source) in FIELDS.items()}
EVENT_KEY = "event_key"  # the source's event id, with dedupe key=COLUMN (checked, not stored)

TRUTH_SUFFIX = ".truth.parquet"
"""The ground truth `churnwatch simulate` writes beside a log (`sim.truth.parquet` for
`sim.jsonl.gz`): per user and day, the hazard it drew. Not events: ingest leaves it out."""

# The pages that carry the churn act in a Sparkify-schema log.
CHURN_PAGE = "Cancellation Confirmation"  # the cancellation itself: the churn label
CANCEL_PAGE = "Cancel"  # the step before it
DOWNGRADE_PAGE = "Submit Downgrade"  # churn too with `include_downgrade`


DEDUPE_RULES = ("content", "line", "key=COLUMN")
_OPTIONS = (
    "ts_unit", "ts_format", "event_name", "dedupe", "ts_min", "ts_max_future_days", "encoding",
    "anonymous",
)  # fmt: skip
ANONYMOUS = ("quarantine", "guest")


@dataclass(frozen=True)
class ColumnMapping:
    """How to read a source: which column holds each canonical field, how its times are
    written, what a row is when the log has no event column, and what makes two rows the
    same event.

    Fields not named fall back to the Sparkify name, then to the canonical name, whichever the
    source has. `ts_unit` applies to numeric `ts` and `registration` values; strings are parsed
    as ISO-8601 timestamps, or with `ts_format` (strptime codes, e.g. `%Y%m%d`) when given.
    `event_name` is the page of every row, for logs without an event column (a purchase log).
    `dedupe` is `content` (rows with the same user, time, session, position, page, level, song
    and value are one event: eventsim logs), `line` (the same line of a file with the same
    name is one event: re-ingesting a file adds nothing, identical rows on different lines are
    kept) or `key=COLUMN` (rows with the same value in COLUMN are one event). `ts_min` and
    `ts_max_future_days` override the settings' plausible range of event times. `encoding`
    is the text encoding of files without a byte order mark (a Python codec name: `cp1252`
    for a CSV that Excel saved as "CSV (Comma delimited)" in a Western locale, `latin-1`,
    `shift_jis`); None reads them as UTF-8. `anonymous` is what a row without a user id (null
    or absent) is: `quarantine` (a `missing_field`: eventsim writes a guest's id as "") or
    `guest` (the anonymous events of Segment, Amplitude or Mixpanel exports, whose user id is
    null until the visitor signs in): kept apart as eventsim's guests are.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    ts_unit: TsUnit = "ms"
    ts_format: str | None = None
    event_name: str | None = None
    dedupe: str = "content"
    ts_min: datetime | None = None
    ts_max_future_days: float | None = None
    encoding: str | None = None
    anonymous: str = "quarantine"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(FIELDS))
        if unknown:
            raise MappingError(
                f"column mapping names unknown canonical field(s) {unknown}; "
                f"the fields are {sorted(FIELDS)}"
            )
        if self.ts_unit not in ("ms", "s", "us", "iso"):
            raise MappingError(
                f"ts_unit has to be one of 'ms', 's', 'us', 'iso'. Got {self.ts_unit!r} instead."
            )
        if self.ts_format is not None and "%" not in self.ts_format:
            raise MappingError(
                f"ts_format has to be strptime codes such as '%Y%m%d' or '%d/%m/%Y %H:%M'. "
                f"Got {self.ts_format!r} instead."
            )
        if self.event_name is not None and (not self.event_name.strip() or "page" in self.columns):
            raise MappingError(
                "event_name names the event of every row of a log without an event column: "
                "give it (non-empty) or map page=COLUMN, not both"
            )
        if not (self.dedupe in ("content", "line") or self.key_column):
            raise MappingError(
                f"dedupe has to be one of {', '.join(DEDUPE_RULES)}. Got {self.dedupe!r} instead."
            )
        if self.encoding is not None:
            try:
                "".encode(self.encoding)  # LookupError for bytes codecs too (hex, zlib)
            except LookupError:
                raise MappingError(
                    "encoding has to name a text encoding such as cp1252, latin-1, utf-16-le "
                    f"or shift_jis. Got {self.encoding!r} instead."
                ) from None
        if self.anonymous not in ANONYMOUS:
            raise MappingError(
                f"anonymous has to be one of {', '.join(ANONYMOUS)}. Got {self.anonymous!r} "
                "instead."
            )
        if self.ts_max_future_days is not None and self.ts_max_future_days < 0:
            raise MappingError(
                f"ts_max_future_days has to be >= 0. Got {self.ts_max_future_days} instead."
            )

    def to_record(self) -> dict[str, Any]:
        """The mapping as JSON values, without its defaults (empty for the default mapping):
        what an ingest writes into the store's manifest."""
        out: dict[str, Any] = {"columns": dict(self.columns)} if self.columns else {}
        for name in _OPTIONS:
            value = getattr(self, name)
            if value != getattr(_DEFAULT, name):
                out[name] = value.isoformat() if isinstance(value, datetime) else value
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ColumnMapping:
        """The mapping `to_record` wrote."""
        options = {k: v for k, v in record.items() if k in _OPTIONS}
        return cls.from_options([f"{k}={v}" for k, v in record.get("columns", {}).items()],
                                **options)  # fmt: skip

    @property
    def key_column(self) -> str | None:
        """The event-id column of `dedupe = key=COLUMN`, else None."""
        kind, sep, column = self.dedupe.partition("=")
        return column.strip() or None if kind == "key" and sep else None

    @property
    def constants(self) -> dict[str, str]:
        """Fields every row has the same value of (the page, with `event_name`)."""
        return {"page": self.event_name.strip()} if self.event_name else {}

    def resolve(self, available: Iterable[str]) -> dict[str, str]:
        """Canonical field -> source column, for a source whose columns are `available`."""
        have = set(available)
        out: dict[str, str] = {}
        for name in FIELDS:
            explicit = self.columns.get(name)
            if name in self.constants:
                continue
            if explicit is not None:
                out[name] = explicit  # kept even if absent: a JSON key may appear later
            elif SPARKIFY_NAMES[name] in have:
                out[name] = SPARKIFY_NAMES[name]
            elif name in have:
                out[name] = name
        if self.key_column:
            out[EVENT_KEY] = self.key_column
        return out

    def json_keys(self, first_keys: Iterable[str]) -> dict[str, str]:
        """Like `resolve`, for JSON lines: canonical style if the first object uses it."""
        keys = set(first_keys)
        snake = "user_id" in keys and "userId" not in keys
        out: dict[str, str] = {}
        for name in FIELDS:
            if name in self.constants:
                continue
            if name in self.columns:
                out[name] = self.columns[name]
            else:
                out[name] = name if snake else SPARKIFY_NAMES[name]
        if self.key_column:
            out[EVENT_KEY] = self.key_column
        return out

    @classmethod
    def from_options(
        cls,
        pairs: Iterable[str] = (),
        *,
        file: Path | None = None,
        **options: Any,
    ) -> ColumnMapping:
        """Build a mapping from a TOML/JSON file and `field=column` pairs and options (the
        command line's win over the file's; options left None keep the file's)."""
        columns: dict[str, str] = {}
        settings: dict[str, Any] = {}
        if file is not None:
            columns, settings = _read_mapping_file(file)
        for pair in pairs:
            name, sep, column = pair.partition("=")
            if not sep or not name.strip() or not column.strip():
                raise MappingError(
                    f"a mapping has to look like field=column. Got {pair!r} instead."
                )
            columns[name.strip()] = column.strip()
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise MappingError(f"unknown mapping option(s) {unknown}; the options are {_OPTIONS}")
        settings.update({k: v for k, v in options.items() if v is not None})
        if isinstance(settings.get("ts_min"), str):
            settings["ts_min"] = _time(settings["ts_min"], "ts_min")
        if isinstance(settings.get("ts_min"), datetime) and settings["ts_min"].tzinfo is None:
            settings["ts_min"] = settings["ts_min"].replace(tzinfo=UTC)
        return cls(columns=columns, **settings)


_DEFAULT = ColumnMapping()


def _time(text: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise MappingError(f"{name} expected an ISO 8601 date or time. Got {text!r}.") from None


def _read_mapping_file(path: Path) -> tuple[dict[str, str], dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"cannot read the mapping file {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise MappingError(f"mapping file {path} is not valid TOML/JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MappingError(f"mapping file {path} has to hold a table. Got {type(data).__name__}.")
    options = {k: data.pop(k) for k in _OPTIONS if k in data}
    if isinstance(options.get("ts_min"), date) and not isinstance(options["ts_min"], datetime):
        options["ts_min"] = datetime.combine(options["ts_min"], time(), tzinfo=UTC)  # TOML date
    columns = data.get("columns", data)
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise MappingError(f"mapping file {path} has to map field names to column names.")
    return dict(columns), options
