from __future__ import annotations

from pathlib import Path

import pytest

from churnwatch.errors import MappingError
from churnwatch.schema import FIELDS, SPARKIFY_NAMES, ColumnMapping


def test_default_mapping_prefers_sparkify_names_then_canonical() -> None:
    resolved = ColumnMapping().resolve(["userId", "ts", "page", "session_id", "extra"])
    assert resolved["user_id"] == "userId"
    assert resolved["session_id"] == "session_id"
    assert "level" not in resolved  # absent columns are simply not mapped


def test_explicit_mapping_wins_over_names_present() -> None:
    mapping = ColumnMapping.from_options(["user_id=customer", "page = event"], ts_unit="s")
    resolved = mapping.resolve(["customer", "event", "ts", "userId"])
    assert resolved["user_id"] == "customer"
    assert resolved["page"] == "event"
    assert mapping.ts_unit == "s"


def test_json_keys_follow_the_style_of_the_first_object() -> None:
    assert ColumnMapping().json_keys(["user_id", "ts"])["session_id"] == "session_id"
    assert ColumnMapping().json_keys(["userId", "ts"])["session_id"] == "sessionId"
    assert ColumnMapping().json_keys([]) == SPARKIFY_NAMES


@pytest.mark.parametrize(
    ("pairs", "unit", "message"),
    [
        (["customer"], None, "field=column"),
        (["userid=customer"], None, "unknown canonical field"),
        ([], "minutes", "ts_unit has to be one of"),
    ],
)
def test_bad_mappings_say_what_was_expected(
    pairs: list[str], unit: str | None, message: str
) -> None:
    with pytest.raises(MappingError, match=message):
        ColumnMapping.from_options(pairs, ts_unit=unit)


def test_mapping_file_toml(tmp_path: Path) -> None:
    path = tmp_path / "map.toml"
    path.write_text('ts_unit = "iso"\n[columns]\nuser_id = "account"\nts = "when"\n')
    mapping = ColumnMapping.from_options(["page=action"], file=path)
    assert dict(mapping.columns) == {"user_id": "account", "ts": "when", "page": "action"}
    assert mapping.ts_unit == "iso"


def test_every_field_has_a_duckdb_type() -> None:
    assert {t for t, _ in FIELDS.values()} <= {
        "VARCHAR",
        "BIGINT",
        "INTEGER",
        "DOUBLE",
        "TIMESTAMPTZ",
    }


def test_a_mapping_read_back_from_its_record_is_the_same_mapping() -> None:
    """An ingest writes its mapping into the manifest as JSON; `retrain --data` and `evaluate`
    read it back to read a later log of the same feed."""
    import json

    mapping = ColumnMapping.from_options(
        ["user_id=customer", "ts=when", "value=amount"], ts_format="%Y%m%d",
        event_name="purchase", dedupe="key=order_id", ts_min="1990-01-01",
        ts_max_future_days=0.5,
    )  # fmt: skip
    record = json.loads(json.dumps(mapping.to_record()))
    assert ColumnMapping.from_record(record) == mapping
    assert ColumnMapping().to_record() == {}  # the default mapping records nothing
    assert ColumnMapping.from_record({}) == ColumnMapping()
