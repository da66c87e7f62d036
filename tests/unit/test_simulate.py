"""The simulator: deterministic, Sparkify-like within documented ranges, with a ground truth."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from churnwatch.errors import InputError
from churnwatch.simulate import SimConfig, simulate, truth_path


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, duckdb.DuckDBPyConnection]:
    out = tmp_path_factory.mktemp("sim") / "log.jsonl.gz"
    simulate(SimConfig(users=300, days=60, seed=3), out)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE TABLE ev AS SELECT * FROM read_json('{out}', format='newline_delimited')")
    con.execute(f"CREATE TABLE truth AS SELECT * FROM read_parquet('{truth_path(out)}')")
    return out, con


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    cfg = SimConfig(users=60, days=10, seed=5)
    a, b, c = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz", tmp_path / "c.jsonl.gz"
    simulate(cfg, a)
    simulate(cfg, b)
    simulate(SimConfig(users=60, days=10, seed=6), c)
    assert md5(a) == md5(b) != md5(c)
    assert md5(truth_path(a)) == md5(truth_path(b))


def test_page_mix_is_sparkify_like(sim: tuple[Path, duckdb.DuckDBPyConnection]) -> None:
    _, con = sim
    share = dict(
        con.execute("SELECT page, count(*) / sum(count(*)) OVER () FROM ev GROUP BY 1").fetchall()
    )
    assert 0.74 <= share["NextSong"] <= 0.86
    assert share["Thumbs Up"] > share["Thumbs Down"] > 0
    for page in ["Roll Advert", "Add to Playlist", "Add Friend", "Settings", "Help", "Error",
                 "Upgrade", "Submit Upgrade", "Downgrade", "Logout", "Home"]:  # fmt: skip
        assert share.get(page, 0) > 0, page
    adverts = dict(
        con.execute(
            "SELECT level, count(*) FILTER (page = 'Roll Advert') "
            "/ count(*) FILTER (page = 'NextSong') FROM ev WHERE userId <> '' GROUP BY level"
        ).fetchall()
    )
    assert adverts["free"] > 10 * adverts["paid"]  # adverts are for free users


def test_events_per_user_day_and_churn_rate_in_documented_ranges(
    sim: tuple[Path, duckdb.DuckDBPyConnection],
) -> None:
    _, con = sim
    per_day = con.execute(
        "SELECT avg(n) FROM (SELECT userId, CAST(to_timestamp(ts / 1000) AS DATE), count(*) n "
        "FROM ev WHERE userId <> '' GROUP BY ALL)"
    ).fetchall()[0][0]
    assert 30 <= per_day <= 150  # eventsim dev log: 93
    users, churned = con.execute(
        "SELECT count(DISTINCT userId), "
        "count(DISTINCT userId) FILTER (page = 'Cancellation Confirmation') "
        "FROM ev WHERE userId <> ''"
    ).fetchall()[0]
    assert 0.08 <= churned / users <= 0.35
    guests = con.execute("SELECT avg((userId = '')::INT) FROM ev").fetchall()[0][0]
    assert 0.01 <= guests <= 0.06


def test_churn_is_written_as_cancel_then_confirmation_last(
    sim: tuple[Path, duckdb.DuckDBPyConnection],
) -> None:
    _, con = sim
    bad = con.execute(
        """WITH last AS (
             SELECT userId, arg_max(page, (ts, itemInSession)) AS last_page,
                    count(*) FILTER (page = 'Cancellation Confirmation') AS confirmations,
                    count(*) FILTER (page = 'Cancel') AS cancels
             FROM ev WHERE userId <> '' GROUP BY userId)
           SELECT count(*) FROM last
           WHERE confirmations > 0 AND (last_page <> 'Cancellation Confirmation'
                                        OR confirmations <> 1 OR cancels <> 1)"""
    ).fetchall()[0][0]
    assert bad == 0
    auth = con.execute(
        "SELECT DISTINCT auth FROM ev WHERE page = 'Cancellation Confirmation'"
    ).fetchall()
    assert auth == [("Cancelled",)]


def test_the_log_ends_with_the_simulated_period(
    sim: tuple[Path, duckdb.DuckDBPyConnection],
) -> None:
    """Evening sessions of the last day run past midnight: they are cut where the period ends
    (60 days from 2018-10-01), and the last day is a full one, not a trickle of a few users."""
    _, con = sim
    end_ms = 1538352000000 + 60 * 86_400_000
    last, users_last_day, users_day_before = con.execute(
        f"""SELECT max(ts),
                   count(DISTINCT userId) FILTER (ts >= {end_ms - 86_400_000}),
                   count(DISTINCT userId) FILTER (ts >= {end_ms - 2 * 86_400_000}
                                                  AND ts < {end_ms - 86_400_000})
            FROM ev WHERE userId <> ''"""
    ).fetchall()[0]
    assert end_ms - 86_400_000 < last < end_ms
    assert users_last_day > 0.5 * users_day_before


def test_arrivals_register_and_levels_change(sim: tuple[Path, duckdb.DuckDBPyConnection]) -> None:
    _, con = sim
    arrivals = con.execute(
        "SELECT count(DISTINCT userId) FROM ev WHERE page = 'Submit Registration' AND userId <> ''"
    ).fetchall()[0][0]
    assert arrivals > 0
    early_registration = con.execute(
        "SELECT count(DISTINCT userId) FROM ev WHERE userId <> '' AND registration < 1538352000000"
    ).fetchall()[0][0]
    assert early_registration > 200  # the initial users registered before the window
    changed = con.execute(
        "SELECT count(*) FROM (SELECT userId FROM ev WHERE userId <> '' GROUP BY userId "
        "HAVING count(DISTINCT level) > 1)"
    ).fetchall()[0][0]
    assert changed > 0


def test_ground_truth_hazard_is_known_and_informative(
    sim: tuple[Path, duckdb.DuckDBPyConnection],
) -> None:
    _, con = sim
    lo, hi, rows = con.execute("SELECT min(hazard), max(hazard), count(*) FROM truth").fetchall()[0]
    assert 0 <= lo and hi < 1 and rows > 300 * 50
    churned_truth = con.execute("SELECT count(*) FROM truth WHERE churned").fetchall()[0][0]
    churned_log = con.execute(
        "SELECT count(*) FROM ev WHERE page = 'Cancellation Confirmation'"
    ).fetchall()[0][0]
    assert churned_truth == churned_log
    # users who went on to churn had a higher true hazard, on average, than those who did not
    ratio = con.execute(
        """SELECT avg(hazard) FILTER (user_id IN (SELECT user_id FROM truth WHERE churned))
                / avg(hazard) FILTER (user_id NOT IN (SELECT user_id FROM truth WHERE churned))
           FROM truth"""
    ).fetchall()[0][0]
    assert ratio > 1.5


def test_parquet_output_and_drift(tmp_path: Path) -> None:
    base = tmp_path / "base.parquet"
    drift = tmp_path / "drift.parquet"
    simulate(SimConfig(users=100, days=20, seed=2), base)
    simulate(SimConfig(users=100, days=20, seed=2, drift_day=10), drift)

    def advert_rate(path: Path, late: bool) -> float:
        cond = ">=" if late else "<"
        return float(
            duckdb.sql(
                f"SELECT count(*) FILTER (page = 'Roll Advert') / count(*) FROM '{path}' "
                f"WHERE ts {cond} 1538352000000 + 10 * 86400000 AND userId <> ''"
            ).fetchall()[0][0]
        )

    assert advert_rate(drift, late=False) == pytest.approx(advert_rate(base, late=False))
    assert advert_rate(drift, late=True) > 1.5 * advert_rate(base, late=True)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="users and days have to be >= 1"):
        SimConfig(users=0)
    for name in ("log.txt", "log.jsonl.txt", "log.gz"):  # log.jsonl.txt was written as JSON
        with pytest.raises(InputError, match="expected --out to end in .jsonl.gz, .jsonl or"):
            simulate(SimConfig(users=5, days=2), tmp_path / "new" / name)
    assert not (tmp_path / "new").exists()  # no folder made for a refused output
    with pytest.raises(InputError, match="seed has to be >= 0. Got -1"):
        SimConfig(seed=-1)  # was numpy's traceback
    for day in (-5, 20):  # before the start, or after the end: the log had no drift at all
        with pytest.raises(InputError, match=rf"drift day .* 0 \.\. 19\. Got {day}"):
            SimConfig(days=20, drift_day=day)
