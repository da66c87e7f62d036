"""Request and response bodies of the API, with the examples shown in its OpenAPI docs."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

# Strict: what the schema says is what is accepted (no "1" for 1, no true for 1.0). The
# features' names and types are the served model's: the live OpenAPI document lists them.
FeatureValue = Annotated[StrictFloat, Field(allow_inf_nan=False)] | StrictInt | StrictStr | None
FeatureRow = dict[Annotated[str, Field(max_length=200)], FeatureValue]
UserId = Annotated[StrictStr, Field(min_length=1, max_length=200)]


Band = Literal["low", "medium", "high"]


def _schema(examples: list[dict[str, Any]], one_of: list[dict[str, Any]]) -> Any:
    """json_schema_extra: the examples, and the "exactly one way" rule the validator enforces,
    so that the schema rejects what the handler would."""

    def extra(schema: dict[str, Any]) -> None:
        schema["examples"] = examples
        schema["oneOf"] = one_of

    return extra


_FEATURES_EXAMPLE: dict[str, Any] = {
    "thumbs_down_7d": 9,
    "thumbs_down_per_day_7d": 1.29,
    "thumbs_down_per_day_all": 0.4,
    "songs_per_day_7d": 12.0,
    "adverts_per_day_14d": 3.5,
    "recency_days": 2.0,
    "tenure_days": 64.0,
    "level": "free",
}


class PredictRequest(BaseModel):
    """One user: by `user_id` (features from the event store, as of its latest data or of
    `as_of`), or by a `features` payload (missing features are imputed as in training)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_schema(
            [
                {"user_id": "39"},
                {"user_id": "39", "as_of": "2018-11-20T00:00:00Z"},
                {"features": _FEATURES_EXAMPLE},
            ],
            [
                {"required": ["user_id"], "not": {"required": ["features"]}},
                {
                    "required": ["features"],
                    "not": {"anyOf": [{"required": ["as_of"]}, {"required": ["user_id"]}]},
                },
            ],
        ),
    )
    # absent, not null: a field left out is None, an explicit null is refused
    user_id: UserId = None  # type: ignore[assignment]
    as_of: AwareDatetime = None  # type: ignore[assignment]
    features: FeatureRow = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _one_way(self) -> PredictRequest:
        if (self.user_id is None) == (self.features is None):
            raise ValueError("expected exactly one of user_id or features")
        if self.as_of is not None and self.user_id is None:
            raise ValueError("as_of goes with user_id, not with features")
        return self


BATCH_LIMIT = 1000  # the schema's bound; CHURNWATCH_BATCH_LIMIT may only lower it


class BatchRequest(BaseModel):
    """Many users by id, or many feature rows; at most `CHURNWATCH_BATCH_LIMIT` (1000)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_schema(
            [
                {"user_ids": ["39", "100010", "200002"]},
                {"rows": [_FEATURES_EXAMPLE, {"recency_days": 20.0, "level": "paid"}]},
            ],
            [{"required": ["user_ids"]}, {"required": ["rows"]}],
        ),
    )
    user_ids: Annotated[list[UserId], Field(min_length=1, max_length=BATCH_LIMIT)] = None  # type: ignore[assignment]
    rows: Annotated[list[FeatureRow], Field(min_length=1, max_length=BATCH_LIMIT)] = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _one_way(self) -> BatchRequest:
        if (self.user_ids is None) == (self.rows is None):
            raise ValueError("expected exactly one of user_ids or rows")
        return self


class Reason(BaseModel):
    feature: str
    value: float | str | None = Field(None, description="Absent when the value was missing.")
    contribution: float = Field(description="SHAP value in the model's margin units.")
    direction: Literal["raises risk", "lowers risk"]
    text: str


class Prediction(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "user_id": "39",
                    "as_of": "2018-12-04T00:00:00Z",
                    "probability": 0.31,
                    "band": "high",
                    "threshold": 0.18,
                    "model_version": "3",
                    "reasons": [
                        {
                            "feature": "thumbs_down_7d",
                            "value": 9,
                            "contribution": 0.41,
                            "direction": "raises risk",
                            "text": "9 thumbs down in the last 7 days, 3.2x your usual rate",
                        }
                    ],
                }
            ]
        }
    )
    user_id: str | None = None
    as_of: datetime | None = None
    probability: float
    band: Band
    threshold: float
    model_version: str
    reasons: list[Reason]
    horizons: dict[Literal["7", "14", "30", "60"], float] | None = Field(
        None,
        description="P(churn within 7, 14, 30 and 60 days): the model's horizon read as a "
        "constant daily hazard (models.survival).",
    )
    median_days_to_churn: float | None = Field(
        None, description="Days until P(churn) reaches one half (none: beyond ten years)."
    )
    imputed: list[str] | None = Field(
        None, description="Features of a payload that were missing and imputed."
    )
    warning: str | None = Field(
        None,
        description="Said when as_of is more than a week after the store's last event: every "
        "user's activity then stops long before it, and all read as gone quiet.",
    )


class BatchItem(BaseModel):
    user_id: str | None = None
    prediction: Prediction | None = None
    error: str | None = None


class BatchResponse(BaseModel):
    items: list[BatchItem]


class EventsRequest(BaseModel):
    """Raw events with Sparkify field names (userId, ts in ms, page, ...); each goes through
    the same checks as `churnwatch ingest`, and rejected ones come back with their reason."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "ts": 1543622400000,
                            "userId": "39",
                            "sessionId": 42,
                            "page": "Thumbs Down",
                            "auth": "Logged In",
                            "level": "free",
                            "gender": "F",
                        }
                    ]
                }
            ]
        },
    )
    events: list[Any] = Field(min_length=1)
    columns: Literal["sparkify", "feed"] = Field(
        "sparkify",
        description=(
            "How to read the events: `sparkify`, eventsim's field names (userId, ts in ms, "
            "page, ...); `feed`, the columns and options of the store's own log, as its latest "
            "ingest read them (`--map`, `--ts-format`, `--event-name`, ...)."
        ),
    )


class EventsResponse(BaseModel):
    received: int
    stored: int
    duplicates: int
    guests: int
    quarantined: int
    quarantined_by_reason: dict[str, int]
    rejected: list[dict[str, Any]]
    scores_refreshed: bool


class AtRiskUser(Prediction):
    level: str | None = None
    tenure_days: float | None = None
    state: str | None = None
    recency_days: float | None = None
    value: float | None = None  # over the settings' value period (90 days)
    expected_loss: float | None = None  # probability x value


class PlanRequest(BaseModel):
    """A retention campaign's terms, in business words."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"budget": 500.0, "offer_cost": 5.0, "save_rate": 0.3, "period_days": 90, "limit": 20}
    ]})  # fmt: skip

    budget: Annotated[float, Field(ge=0, le=1e12, strict=True, allow_inf_nan=False)]
    offer_cost: Annotated[float, Field(gt=0, le=1e9, strict=True, allow_inf_nan=False)]
    save_rate: Annotated[float, Field(gt=0, le=1, strict=True, allow_inf_nan=False)]
    period_days: Annotated[int, Field(ge=1, le=3650)] = 90
    limit: Annotated[int, Field(ge=1, le=1000)] = 100

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        """JSON Schema's integer: 3 and 3.0 alike, never "3" or true (3.5 fails as an int)."""
        if isinstance(data, dict):
            for key in ("period_days", "limit"):
                if isinstance(data.get(key), (str, bool)):
                    raise ValueError(f"{key}: expected a whole number, not text or true/false")
        return data


class PlannedUser(BaseModel):
    user_id: str
    probability: float
    value: float
    expected_loss: float
    expected_net_gain: float
    reasons: list[Reason]


class CurvePoint(BaseModel):
    contacted: int
    expected_net: float


class PlanResponse(BaseModel):
    as_of: datetime
    model_version: str
    users_scored: int
    users_contacted: int
    budget: float
    cost: float
    expected_churners_reached: float
    expected_value_at_risk: float
    expected_value_saved: float
    expected_net: float
    users: list[PlannedUser]  # the users to contact, in plan order (at most `limit`)
    curve: list[CurvePoint]  # expected net gain against the number contacted
    why_nobody: str | None = None  # when no one is to be contacted: why, and what would change it


class AtRiskResponse(BaseModel):
    as_of: datetime
    active_users: int
    model_version: str
    users: list[AtRiskUser]


class ModelResponse(BaseModel):
    ref: str
    name: str
    version: str
    aliases: list[str]
    run_id: str
    kind: str
    trained_at: str
    loaded_at: str
    threshold: float
    explains: bool
    metrics: dict[str, float]
    features: list[str]
    population: dict[str, Any] | None
    feature_warning: str | None = Field(
        None,
        description="Set when the model was trained on features defined otherwise than this "
        "churnwatch computes them: retrain it.",
    )


class Problem(BaseModel):
    """Every error answer: what was expected and what came."""

    error: str
    message: str
    detail: list[dict[str, Any]] | None = None
