"""Settings: one pydantic-settings class, read from `CHURNWATCH_*` environment variables.

Nothing here touches the disk on import; paths are resolved when used.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every tunable of churnwatch, with the defaults a laptop user wants."""

    model_config = SettingsConfigDict(env_prefix="CHURNWATCH_", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Root of everything churnwatch writes.")
    store_dir: Path | None = Field(None, description="Event store; default <data_dir>/store.")
    ts_min: datetime = Field(
        datetime(2000, 1, 1, tzinfo=UTC),
        description="Events before this time are quarantined as implausible.",
    )
    ts_max_future_days: float = Field(
        1.0, ge=0, description="Events later than now + this many days are quarantined."
    )
    chunk_bytes: int = Field(
        64 << 20, ge=1 << 16, description="Decompressed bytes of JSON lines handled at once."
    )
    threads: int | None = Field(None, ge=1, description="DuckDB threads; default all cores.")
    memory_limit: str = Field(
        "2GB", description="DuckDB memory limit, e.g. '4GB'; larger work spills to disk."
    )
    # serving
    model_ref: str = Field(
        "models:/churnwatch@champion", description="The model the API serves (MLflow URI)."
    )
    api_key: SecretStr | None = Field(
        None, description="When set, write endpoints (/events, /admin/*) need it in X-API-Key."
    )
    max_body_bytes: int = Field(8 << 20, ge=1024, description="Largest request body accepted.")
    batch_limit: int = Field(1000, ge=1, description="Most users or rows in /predict/batch.")
    events_limit: int = Field(10_000, ge=1, description="Most events in one POST /events.")
    reasons: int = Field(5, ge=0, le=50, description="Reasons returned with each score.")

    @field_validator("ts_min")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def store_path(self) -> Path:
        return self.store_dir if self.store_dir is not None else self.data_dir / "store"
