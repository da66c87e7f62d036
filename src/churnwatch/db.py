"""DuckDB connections and SQL quoting: the one place every layer above gets them from."""

from __future__ import annotations

import duckdb

from churnwatch.config import Settings
from churnwatch.errors import InputError


def connect(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up the way churnwatch needs it (UTC, bounded memory)."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{_size(settings.memory_limit)}'")
    if settings.threads:
        con.execute(f"SET threads = {int(settings.threads)}")
    return con


def _size(text: str) -> str:
    cleaned = text.strip().upper().replace(" ", "")
    if not cleaned[:-2].replace(".", "").isdigit() or cleaned[-2:] not in ("KB", "MB", "GB", "TB"):
        raise InputError(f"memory_limit has to look like '4GB'. Got {text!r} instead.")
    return cleaned


def quote(identifier: str) -> str:
    """A SQL identifier, quoted so that any name is safe."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal (for the few places DuckDB cannot bind a parameter, e.g. views)."""
    return "'" + value.replace("'", "''") + "'"


def literal_list(values: list[str]) -> str:
    """A SQL list of string literals."""
    return "[" + ", ".join(literal(v) for v in values) + "]"


def event_files(files: list[str]) -> str:
    """SQL reading event Parquet files: columns matched by name (files written before a column
    existed lack it), the event_date folders ignored (the column is in the files)."""
    return f"read_parquet({literal_list(files)}, hive_partitioning = false, union_by_name = true)"
