"""Errors raised by churnwatch library code.

Every message says what was expected and what came, so that the CLI and the HTTP layer can show
it as it is.
"""

from __future__ import annotations


class ChurnwatchError(Exception):
    """Base class of every error churnwatch raises on purpose; `detail` optionally carries
    structured facts (rejected rows, say) that the HTTP layer returns with the message."""

    def __init__(self, message: str = "", *, detail: list[dict[str, object]] | None = None):
        super().__init__(message)
        self.detail = detail


class InputError(ChurnwatchError):
    """An input (file, path, option) is not what was expected."""


class NoValidRowsError(InputError):
    """An ingest read no valid row at all; `quarantine_file` holds the rejected rows."""

    quarantine_file: str | None = None


class MappingError(InputError):
    """A column mapping names a field or column that does not exist."""


class StoreError(ChurnwatchError):
    """The event store is missing, locked or inconsistent."""


class ConfigError(ChurnwatchError):
    """A setting has a value churnwatch cannot use."""


class RegistryError(ChurnwatchError):
    """The model registry cannot answer: no such model, version or alias, or it is
    unreachable."""
