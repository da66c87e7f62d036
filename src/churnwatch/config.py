"""Settings: one pydantic-settings class, read from `CHURNWATCH_*` environment variables.

Nothing here touches the disk on import; paths are resolved when used.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from churnwatch.errors import ConfigError

_PREFIX = "CHURNWATCH_"


class Settings(BaseSettings):
    """Every tunable of churnwatch, with the defaults a laptop user wants."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, extra="ignore")

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
        4 << 20,
        ge=1 << 16,
        description="Decompressed bytes of input read at a time (small chunks ingest fastest).",
    )
    threads: int | None = Field(None, ge=1, description="DuckDB threads; default all cores.")
    memory_limit: str = Field(
        "1.5GB",  # with Python around it, a 26M-event ingest or snapshot build stays under 2 GB
        description="DuckDB memory limit, e.g. '4GB'; larger work spills to disk.",
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

    reload_poll_seconds: float = Field(
        60.0,
        ge=0,
        description="How often the API checks the registry for a new champion (0: never).",
    )
    # retraining
    promote_metric: str = Field(
        "pr_auc", description="Metric a challenger must beat: pr_auc, roc_auc or lift_top10."
    )
    promote_margin: float = Field(
        0.0, description="By how much the challenger must beat the champion."
    )
    # alerts
    level_prices: dict[str, float] = Field(
        default_factory=lambda: {"paid": 9.99, "free": 0.0},
        description="What a user of each level brings in per 30 days (eventsim logs; the "
        "value of a retention plan). Other logs take their value column.",
    )
    event_value: float = Field(
        1.0, ge=0, description="What one event is worth, for a log with no value column."
    )
    alert_probability: float = Field(
        0.25, ge=0, le=1, description="Alert on users at or above this churn probability."
    )
    alert_max_users: int = Field(
        50,
        ge=1,
        description="User alerts per run at most (the riskiest); one alert counts the rest.",
    )
    alert_drift_share: float = Field(
        0.03, ge=0, le=1, description="Alert when this share of monitored features drifts."
    )
    drift_min_psi: float = Field(
        0.1, ge=0, description="A feature drifts when Evidently's test fails and PSI >= this."
    )
    alert_auc_drop: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Alert when realised ROC-AUC falls this far below the test ROC-AUC.",
    )
    alert_quarantine_rate: float = Field(
        0.05, ge=0, le=1, description="Alert when this share of ingested lines is quarantined."
    )
    alert_cooldown_hours: float = Field(
        72.0, ge=0, description="No second alert for the same user or rule within this time."
    )
    alert_webhook_url: str | None = Field(None, description="POST alerts as JSON to this URL.")
    alert_webhook_timeout: float = Field(5.0, gt=0, description="Seconds per webhook attempt.")
    alert_webhook_retries: int = Field(
        3, ge=0, description="Webhook retries after a failed attempt."
    )
    alert_webhook_backoff: float = Field(
        1.0, ge=0, description="First retry delay in seconds, doubling."
    )

    @field_validator("ts_min")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @property
    def store_path(self) -> Path:
        return self.store_dir if self.store_dir is not None else self.data_dir / "store"


def check_environment() -> Settings:
    """The settings, or a ConfigError naming each CHURNWATCH_* variable that does not parse
    (pydantic's own error ended every command in a traceback)."""
    expected = f"expected {_PREFIX}* environment variables churnwatch can use. Got "
    try:
        return Settings()
    except ValidationError as exc:
        bad = []
        for error in exc.errors():
            name = _PREFIX + str(error["loc"][0]).upper()
            secret = re.search("KEY|URL", name)  # a value that may hold a credential
            value = "" if secret else f"={error.get('input')!r}"
            bad.append(f"{name}{value} ({error['msg']})")
        raise ConfigError(expected + "; ".join(bad)) from exc
    except SettingsError as exc:  # a dict or list setting that is not JSON
        field = re.search(r'field "(\w+)"', str(exc))
        name = _PREFIX + field.group(1).upper() if field else "a variable"
        raise ConfigError(f"{expected}{name}, which is not valid JSON") from exc
