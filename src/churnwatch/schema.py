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
from pathlib import Path
from typing import Literal

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
}
REQUIRED: tuple[str, ...] = ("user_id", "ts", "page")
SPARKIFY_NAMES: dict[str, str] = {name: source for name, (_, source) in FIELDS.items()}

# The pages that carry the churn act in a Sparkify-schema log.
CHURN_PAGE = "Cancellation Confirmation"  # the cancellation itself: the churn label
CANCEL_PAGE = "Cancel"  # the step before it
DOWNGRADE_PAGE = "Submit Downgrade"  # churn too with `include_downgrade`


@dataclass(frozen=True)
class ColumnMapping:
    """Which source column holds each canonical field, and the unit of epoch timestamps.

    Fields not named fall back to the Sparkify name, then to the canonical name, whichever the
    source has. `ts_unit` applies to numeric `ts` and `registration` values; strings are always
    parsed as ISO-8601 timestamps.
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    ts_unit: TsUnit = "ms"

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

    def resolve(self, available: Iterable[str]) -> dict[str, str]:
        """Canonical field -> source column, for a source whose columns are `available`."""
        have = set(available)
        out: dict[str, str] = {}
        for name in FIELDS:
            explicit = self.columns.get(name)
            if explicit is not None:
                out[name] = explicit  # kept even if absent: a JSON key may appear later
            elif SPARKIFY_NAMES[name] in have:
                out[name] = SPARKIFY_NAMES[name]
            elif name in have:
                out[name] = name
        return out

    def json_keys(self, first_keys: Iterable[str]) -> dict[str, str]:
        """Like `resolve`, for JSON lines: canonical style if the first object uses it."""
        keys = set(first_keys)
        snake = "user_id" in keys and "userId" not in keys
        out: dict[str, str] = {}
        for name in FIELDS:
            if name in self.columns:
                out[name] = self.columns[name]
            else:
                out[name] = name if snake else SPARKIFY_NAMES[name]
        return out

    @classmethod
    def from_options(
        cls,
        pairs: Iterable[str] = (),
        *,
        file: Path | None = None,
        ts_unit: str | None = None,
    ) -> ColumnMapping:
        """Build a mapping from a TOML/JSON file and `field=column` pairs (pairs win)."""
        columns: dict[str, str] = {}
        unit: str = "ms"
        if file is not None:
            columns, unit = _read_mapping_file(file)
        for pair in pairs:
            name, sep, column = pair.partition("=")
            if not sep or not name.strip() or not column.strip():
                raise MappingError(
                    f"a mapping has to look like field=column. Got {pair!r} instead."
                )
            columns[name.strip()] = column.strip()
        if ts_unit is not None:
            unit = ts_unit
        return cls(columns=columns, ts_unit=unit)  # type: ignore[arg-type]


def _read_mapping_file(path: Path) -> tuple[dict[str, str], str]:
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
    unit = str(data.pop("ts_unit", "ms"))
    columns = data.get("columns", data)
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise MappingError(f"mapping file {path} has to map field names to column names.")
    return dict(columns), unit
