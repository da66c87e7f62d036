"""Logs that are not eventsim's: a purchase export with no event column, dates as YYYYMMDD,
dates before 2000, an amount, CRLF line ends and real repeat purchases (the shape of the public
CDNOW log). Every option works from the command line and from a mapping file."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.errors import MappingError
from churnwatch.features import build_snapshots
from churnwatch.features.build import spec_for
from churnwatch.ingest import EventStore, ingest
from churnwatch.ingest.validate import event_id_sql
from churnwatch.labels import ChurnDefinition, CutoffSchedule
from churnwatch.schema import ColumnMapping

# customer, day, number of CDs, dollars; rows 3 and 4 are the same purchase made twice
ROWS = [
    ("00001", "19970101", "1", "11.77"),
    ("00002", "19970112", "1", "12.00"),
    ("00002", "19970112", "5", "77.00"),
    ("00002", "19970112", "5", "77.00"),
    ("00003", "19970102", "2", "20.76"),
    ("00003", "19970330", "2", "20.76"),
    ("00004", "19971340", "1", "9.99"),  # no 13th month: bad_type
    ("00005", "19970105", "1", ""),  # no amount: stored, value unknown
    ("00006", "19970105", "1", "abc"),  # an amount that is not a number: bad_type
]
OPTIONS = ["--map", "user_id=customer_id", "--map", "ts=date", "--ts-format", "%Y%m%d",
           "--ts-min", "1990-01-01", "--event-name", "purchase",
           "--map", "value=dollar_value"]  # fmt: skip


@pytest.fixture()
def cdnow(tmp_path: Path) -> Path:
    path = tmp_path / "cdnow.csv"
    lines = ["customer_id,date,number_of_cds,dollar_value", *(",".join(r) for r in ROWS)]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


def _events(store: Path) -> list[tuple[object, ...]]:
    con = duckdb.connect()
    EventStore(store).register(con)
    rows = con.execute(
        "SELECT user_id, strftime(ts, '%Y-%m-%d'), page, value FROM events ORDER BY ALL"
    ).fetchall()
    con.close()
    return rows


def _ingest(args: list[str], store: Path) -> str:
    result = CliRunner().invoke(app, ["ingest", *args, "--store", str(store)])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_purchase_export_ingests_raw_and_keeps_repeat_purchases(
    cdnow: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    out = _ingest([str(cdnow), *OPTIONS, "--dedupe", "line"], store)
    assert "quarantined" in out and "(dedupe line)" in out
    rows = _events(store)
    assert len(rows) == 7  # both identical purchases of customer 2 are kept
    assert rows.count(("00002", "1997-01-12", "purchase", 77.0)) == 2
    assert ("00005", "1997-01-05", "purchase", None) in rows
    assert {r[2] for r in rows} == {"purchase"}
    # the two bad rows are quarantined with a reason that says what was expected
    q = duckdb.sql(
        f"SELECT line, reason, detail FROM read_json_auto('{store}/quarantine/*.jsonl') "
        "ORDER BY line"
    ).fetchall()
    assert [(line, reason) for line, reason, _ in q] == [(8, "bad_type"), (10, "bad_type")]
    assert "expected a time written %Y%m%d, got 19971340" in q[0][2]
    assert "dollar_value: expected a number, got abc" in q[1][2]
    # the same file again adds nothing
    again = _ingest([str(cdnow), *OPTIONS, "--dedupe", "line"], store)
    assert len(_events(store)) == 7 and "stored (new)" in again
    assert EventStore(store).manifest().ingests[-1]["stored"] == 0


def test_content_dedupe_drops_identical_rows_and_says_so(cdnow: Path, tmp_path: Path) -> None:
    report = ingest(
        [cdnow], settings=Settings(store_dir=tmp_path / "s"),
        mapping=ColumnMapping.from_options(
            ["user_id=customer_id", "ts=date", "value=dollar_value"], ts_format="%Y%m%d",
            ts_min="1990-01-01", event_name="purchase",
        ),
    )  # fmt: skip
    assert (report.valid, report.stored, report.repeated) == (7, 6, 1)
    assert report.dedupe == "content"


def test_dates_before_2000_are_out_of_range_by_default(cdnow: Path, tmp_path: Path) -> None:
    mapping = ColumnMapping.from_options(
        ["user_id=customer_id", "ts=date"], ts_format="%Y%m%d", event_name="purchase"
    )
    store = tmp_path / "s"
    with pytest.raises(Exception, match="no|none|valid"):
        ingest([cdnow], settings=Settings(store_dir=store), mapping=mapping)
    q = duckdb.sql(f"SELECT DISTINCT reason FROM read_json_auto('{store}/quarantine/*.jsonl')")
    assert {r[0] for r in q.fetchall()} == {"ts_out_of_range", "bad_type"}


def test_a_key_column_makes_rows_one_event(tmp_path: Path) -> None:
    log = tmp_path / "orders.csv"
    log.write_text(
        "order,customer,when,amount\n"
        "A1,7,2024-03-01 10:00,5\nA1,7,2024-03-01 10:00,5\n"  # the same order exported twice
        "A2,7,2024-03-01 10:00,5\n"  # another order, same content
        ",8,2024-03-02 09:00,3\n"  # no order id: quarantined
    )
    mapping = ColumnMapping.from_options(
        ["user_id=customer", "ts=when", "value=amount"], event_name="order",
        dedupe="key=order", ts_format="%Y-%m-%d %H:%M",
    )  # fmt: skip
    report = ingest([log], settings=Settings(store_dir=tmp_path / "s"), mapping=mapping)
    assert (report.stored, report.repeated) == (2, 1)
    assert report.quarantined_by_reason == {"missing_field": 1}


def test_the_mapping_file_holds_every_option(cdnow: Path, tmp_path: Path) -> None:
    spec = tmp_path / "cdnow.toml"
    spec.write_text(
        'ts_format = "%Y%m%d"\nts_min = 1990-01-01\nevent_name = "purchase"\n'
        'dedupe = "line"\nts_max_future_days = 2\n\n'
        '[columns]\nuser_id = "customer_id"\nts = "date"\nvalue = "dollar_value"\n'
    )
    store = tmp_path / "store"
    _ingest([str(cdnow), "--mapping-file", str(spec)], store)
    assert len(_events(store)) == 7
    mapping = ColumnMapping.from_options(file=spec, dedupe="content")  # the command line wins
    assert mapping.dedupe == "content" and mapping.ts_max_future_days == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dedupe": "rows"}, "dedupe has to be one of content, line, key=COLUMN"),
        ({"dedupe": "key="}, "dedupe has to be one of"),
        ({"ts_format": "YYYYMMDD"}, "strptime codes"),
        ({"event_name": "purchase", "pairs": ["page=kind"]}, "not both"),
        ({"ts_min": "the nineties"}, "ts_min expected an ISO 8601"),
        ({"anonymous": "visitor"}, "anonymous has to be one of quarantine, guest. Got 'visitor'"),
        ({"encoding": "hex"}, "encoding has to name a text encoding .* Got 'hex'"),
    ],
)
def test_bad_options_say_what_was_expected(kwargs: dict[str, object], message: str) -> None:
    pairs = kwargs.pop("pairs", [])
    with pytest.raises(MappingError, match=message):
        ColumnMapping.from_options(pairs, **kwargs)  # type: ignore[arg-type]


def test_eventsim_event_ids_are_unchanged_by_the_value_column() -> None:
    """Stores written before the value column existed dedupe against new ingests: without a
    value, the content key hashes exactly what it hashed before."""
    row = ("SELECT '7' AS user_id, TIMESTAMPTZ '2018-10-01 00:01:17+00' AS ts, 11 AS session_id, "
           "3 AS item_in_session, 'NextSong' AS page, 'free' AS level, 'Trouble' AS song, "
           "NULL::DOUBLE AS value")  # fmt: skip
    old = (
        "(md5_number_lower(concat_ws(chr(31), user_id, CAST(epoch_ms(ts) AS VARCHAR), "
        "coalesce(CAST(session_id AS VARCHAR), ''), coalesce(CAST(item_in_session AS VARCHAR), "
        "''), page, level, coalesce(song, ''))) >> 1)::BIGINT"
    )
    con = duckdb.connect()
    got = con.execute(f"SELECT {event_id_sql('content')}, {old} FROM ({row})").fetchone()
    assert got is not None and got[0] == got[1]
    with_value = con.execute(
        f"SELECT {event_id_sql('content')} FROM ({row.replace('NULL::DOUBLE', '2.5')})"
    ).fetchone()
    assert with_value is not None and with_value[0] != got[0]


def test_a_store_from_before_the_value_column_reads_with_new_ingests(tmp_path: Path) -> None:
    """Event files written before `value` existed and files written after mix in one store:
    deduplication, the events view and the snapshot engine match columns by name."""
    store = tmp_path / "s"
    mapping = ColumnMapping.from_options(["user_id=customer", "ts=when", "page=what",
                                          "value=amount"], ts_min="2020-01-01")  # fmt: skip
    a = tmp_path / "a.csv"
    a.write_text("customer,when,what,amount\n1,2024-03-01 10:00:00,buy,5\n")
    ingest([a], settings=Settings(store_dir=store), mapping=mapping)
    # rewrite that event file as the previous release wrote it: no value column at all
    (old,) = EventStore(store).files("events")
    table = pq.read_table(old)
    pq.write_table(table.drop_columns(["value"]), old)
    b = tmp_path / "b.csv"
    b.write_text("customer,when,what,amount\n1,2024-03-01 10:00:00,buy,5\n"
                 "2,2024-03-20 10:00:00,buy,7\n")  # fmt: skip
    report = ingest([b], settings=Settings(store_dir=store), mapping=mapping)
    assert report.stored == 1  # the first row is already stored (same content, no value then)
    con = duckdb.connect()
    EventStore(store).register(con)
    assert con.execute("SELECT count(*), count(value) FROM events").fetchone() == (2, 1)
    con.close()
    spec = spec_for(EventStore(store), ChurnDefinition(kind="inactivity", inactivity_days=7,
                    horizon_days=7), CutoffSchedule(every_days=7, min_history_days=7))  # fmt: skip
    assert spec.value
    table, _ = build_snapshots(EventStore(store), spec=spec,
                               schedule=CutoffSchedule(explicit=(date(2024, 3, 25),)))  # fmt: skip
    assert table.num_rows == 2 and "value_sum_all" in table.column_names


def test_a_field_inside_an_object_is_mapped_with_a_dotted_path(tmp_path: Path) -> None:
    """Mixpanel's export keeps the user and the time in `properties`, Segment's the plan:
    `--map user_id=properties.distinct_id` found no such top-level key, and every row was a
    missing_field. A dotted name goes into objects, unless the log has that key itself."""
    log = tmp_path / "mixpanel.json"
    rows = [
        {"event": "Song Played", "properties": {"time": 1538352077, "distinct_id": "u1",
                                                "plan": "paid"}, "app.version": "2.1"},
        {"event": "Thumbs Down", "properties": {"time": 1538352078, "distinct_id": "u1"},
         "app.version": "2.2"},
        {"event": "Song Played", "properties": {"time": 1538352079}, "app.version": "2.2"},
    ]  # fmt: skip
    log.write_text("".join(json.dumps(r) + "\n" for r in rows))
    store = tmp_path / "store"
    out = _ingest(["--map", "user_id=properties.distinct_id", "--map", "ts=properties.time",
                   "--ts-unit", "s", "--map", "page=event", "--map", "level=properties.plan",
                   "--map", "song=app.version", log.as_posix()], store)  # fmt: skip
    assert "quarantined" in out
    con = duckdb.connect()
    EventStore(store).register(con)
    got = con.execute("SELECT user_id, epoch(ts), page, level, song FROM events ORDER BY ts")
    assert got.fetchall() == [
        ("u1", 1538352077.0, "Song Played", "paid", "2.1"),  # "app.version": the log's own key
        ("u1", 1538352078.0, "Thumbs Down", "unknown", "2.2"),
    ]
    quarantined = [json.loads(line) for line in next((store / "quarantine").iterdir()).open()]
    assert [q["detail"] for q in quarantined] == [
        "missing required field user_id (source properties.distinct_id); a log whose events "
        "before sign-in have no user id is read with --anonymous guest"
    ]


def test_anonymous_events_are_guests_when_the_log_says_so(tmp_path: Path) -> None:
    """Segment, Amplitude and Mixpanel exports hold a visitor's events before sign-in with a
    null (or no) user id: 40 % of this log was quarantined as missing_field. With `anonymous
    = "guest"` they are guest events, kept apart like eventsim's, and the feed keeps the rule."""
    log = tmp_path / "segment.jsonl"
    rows = [
        {"event": "Song Played", "userId": None, "anonymousId": "a1", "timestamp": "10:00"},
        {"event": "Song Played", "anonymousId": "a1", "timestamp": "10:01"},
        {"event": "Signed Up", "userId": "u1", "anonymousId": "a1", "timestamp": "10:02"},
        {"event": "Song Played", "userId": "u1", "timestamp": "10:03"},
        {"event": "Song Played", "userId": "u2", "timestamp": "10:04"},
        {"event": "Song Played", "userId": " ", "timestamp": "10:05"},  # blank: a guest already
    ]
    log.write_text("".join(
        json.dumps({**r, "timestamp": f"2024-03-01T{r['timestamp']}:00Z"}) + "\n" for r in rows
    ))  # fmt: skip
    (tmp_path / "segment.toml").write_text(
        'ts_unit = "iso"\n[columns]\nts = "timestamp"\npage = "event"\n'
    )
    mapping = ColumnMapping.from_options(file=tmp_path / "segment.toml")
    settings = Settings(store_dir=tmp_path / "strict")
    strict = ingest([log], settings=settings, mapping=mapping)
    assert (strict.valid, strict.guests, strict.quarantined_by_reason) == (
        3, 1, {"missing_field": 2}
    )  # fmt: skip

    (tmp_path / "segment.toml").write_text(
        'ts_unit = "iso"\nanonymous = "guest"\n[columns]\nts = "timestamp"\npage = "event"\n'
    )
    store = tmp_path / "store"
    out = _ingest([log.as_posix(), "--mapping-file", str(tmp_path / "segment.toml"), "--strict"],
                  store)  # fmt: skip
    said = " ".join(out.split())
    assert "valid user events │ 3" in said and "guest / logged-out events │ 3 (3 new)" in said
    assert [u for u, *_ in _events(store)] == ["u1", "u1", "u2"]
    guests = duckdb.connect().execute(
        "SELECT count(*), count(DISTINCT user_id) FROM read_parquet($f)",
        {"f": EventStore(store).files("guests")},
    )
    assert guests.fetchone() == (3, 1)  # stored with the guests' empty id
    recorded = EventStore(store).mapping()
    assert recorded is not None and recorded.anonymous == "guest"
