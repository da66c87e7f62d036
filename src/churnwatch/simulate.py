"""A Sparkify-schema event simulator with a known churn hazard.

Each user has a latent engagement (how much they listen) and satisfaction (how happy they
are). Every simulated day, vectorised over all users:

1. the day's hazard of cancelling is computed from the state at the start of the day and
   written to the ground truth;
2. each active user gets a Poisson number of sessions (more in the evening and at weekends,
   fewer when satisfaction is low) and each session a geometric number of events;
3. pages are drawn per event from a mix that depends on level (adverts for free users) and
   satisfaction (more thumbs down, help and settings when unhappy);
4. experience feeds back: adverts, thumbs down and errors lower satisfaction, which drifts
   back towards the user's own baseline;
5. users who churn end their last session with `Cancel` then `Cancellation Confirmation`;
   free users may upgrade and paid users downgrade (`Submit Upgrade` / `Submit Downgrade`).

New users arrive every day (their first event is `Submit Registration`), and guests browse
without a user id. Output is JSON lines (gzip, one member per day) or Parquet, written day by
day in bounded memory; the same seed gives the same bytes. The ground truth (per user and day:
hazard, satisfaction, engagement, churned) goes to a Parquet file beside the output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from isal import isal_zlib

from churnwatch.errors import InputError

log = logging.getLogger(__name__)

PAGES = [
    "NextSong", "Thumbs Up", "Thumbs Down", "Add to Playlist", "Add Friend", "Roll Advert",
    "Home", "Settings", "Save Settings", "Help", "About", "Error", "Upgrade", "Submit Upgrade",
    "Downgrade", "Submit Downgrade", "Logout", "Cancel", "Cancellation Confirmation",
    "Login", "Register", "Submit Registration",
]  # fmt: skip
P = {name: i for i, name in enumerate(PAGES)}
# Page weights per event of a logged-in user: (baseline, change per unit of dissatisfaction).
_WEIGHTS: dict[str, tuple[float, float]] = {
    "NextSong": (0.815, 0.0),
    "Thumbs Up": (0.046, -0.018),
    "Thumbs Down": (0.009, 0.010),
    "Add to Playlist": (0.024, -0.006),
    "Add Friend": (0.016, -0.004),
    "Home": (0.036, 0.004),
    "Settings": (0.005, 0.004),
    "Save Settings": (0.001, 0.0005),
    "Help": (0.005, 0.003),
    "About": (0.002, 0.0),
    "Error": (0.001, 0.0),
    "Logout": (0.011, 0.0),
}
_ADVERT_FREE = 0.065  # weight of Roll Advert for free users (paid users: 0.002)
_ADVERT_PAID = 0.002
_PUT_PAGES = (
    "NextSong", "Thumbs Up", "Thumbs Down", "Add to Playlist", "Add Friend", "Save Settings",
    "Submit Upgrade", "Submit Downgrade", "Logout", "Cancel", "Login", "Submit Registration",
)  # fmt: skip
_METHOD = dict.fromkeys(_PUT_PAGES, "PUT")
_STATUS = {"Error": 404, "Submit Upgrade": 307, "Submit Downgrade": 307, "Logout": 307,
           "Cancel": 307, "Login": 307, "Submit Registration": 307, "Save Settings": 307}  # fmt: skip
_GUEST_PAGES = ["Home", "Login", "About", "Help", "Register", "Submit Registration", "Error"]
_GUEST_P = np.array([0.45, 0.3, 0.08, 0.07, 0.05, 0.03, 0.02])

_CITIES = [
    "New York-Newark-Jersey City, NY-NJ-PA", "Los Angeles-Long Beach-Anaheim, CA",
    "Chicago-Naperville-Elgin, IL-IN-WI", "Dallas-Fort Worth-Arlington, TX",
    "Houston-The Woodlands-Sugar Land, TX", "Washington-Arlington-Alexandria, DC-VA-MD-WV",
    "Miami-Fort Lauderdale-West Palm Beach, FL", "Philadelphia-Camden-Wilmington, PA-NJ-DE-MD",
    "Atlanta-Sandy Springs-Roswell, GA", "Boston-Cambridge-Newton, MA-NH",
    "Phoenix-Mesa-Scottsdale, AZ", "San Francisco-Oakland-Hayward, CA",
    "Riverside-San Bernardino-Ontario, CA", "Detroit-Warren-Dearborn, MI",
    "Seattle-Tacoma-Bellevue, WA", "Minneapolis-St. Paul-Bloomington, MN-WI",
    "San Diego-Carlsbad, CA", "Tampa-St. Petersburg-Clearwater, FL", "Denver-Aurora-Lakewood, CO",
    "St. Louis, MO-IL", "Baltimore-Columbia-Towson, MD", "Charlotte-Concord-Gastonia, NC-SC",
    "Portland-Vancouver-Hillsboro, OR-WA", "San Antonio-New Braunfels, TX",
    "Pittsburgh, PA", "Sacramento--Roseville--Arden-Arcade, CA", "Las Vegas-Henderson-Paradise, NV",
    "Cincinnati, OH-KY-IN", "Kansas City, MO-KS", "Columbus, OH", "Indianapolis-Carmel-Anderson, IN",
    "Cleveland-Elyria, OH", "Austin-Round Rock, TX", "Nashville-Davidson--Murfreesboro--Franklin, TN",
    "Raleigh, NC", "Salt Lake City, UT", "Birmingham-Hoover, AL", "Tucson, AZ", "Albany, OR",
    "Bakersfield, CA",
]  # fmt: skip
_AGENTS = [
    "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.143 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.125 Safari/537.36",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_4) AppleWebKit/537.77.4 (KHTML, like Gecko) Version/7.0.5 Safari/537.77.4",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53",
    "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:31.0) Gecko/20100101 Firefox/31.0",
    "Mozilla/5.0 (iPad; CPU OS 7_1_2 like Mac OS X) AppleWebKit/537.51.2 (KHTML, like Gecko) Version/7.0 Mobile/11D257 Safari/9537.53",
    "Mozilla/5.0 (Windows NT 6.3; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.143 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/36.0.1985.125 Safari/537.36",
]  # fmt: skip
_FIRST = ["Ava", "Liam", "Mia", "Noah", "Emma", "Ethan", "Sofia", "Lucas", "Chloe", "Mason",
          "Zoe", "Logan", "Lily", "Owen", "Ella", "Jack", "Aria", "Leo", "Nora", "Caleb"]  # fmt: skip
_LAST = ["Smith", "Johnson", "Garcia", "Brown", "Jones", "Miller", "Davis", "Lopez", "Wilson",
         "Moore", "Taylor", "Thomas", "Lee", "White", "Harris", "Clark", "Lewis", "Young"]  # fmt: skip


@dataclass(frozen=True)
class SimConfig:
    """Knobs of the simulation; the defaults give Sparkify-like logs."""

    users: int = 500
    days: int = 60
    seed: int = 0
    start: date = date(2018, 10, 1)
    arrivals_per_day: float | None = None  # default: 0.5 % of the initial users per day
    guest_share: float = 0.03  # guest events as a share of all events
    sessions_per_day: float = 0.32  # mean for an average user
    events_per_session: float = 80.0
    base_hazard: float = 0.0022  # daily cancellation hazard of an average user
    hazard_satisfaction: float = 1.3  # log-odds per unit of lost satisfaction
    hazard_engagement: float = 0.5  # log-odds per unit of engagement below average
    hazard_free: float = 0.3  # extra log-odds for free users
    upgrade_rate: float = 0.012  # daily chance a free user upgrades (average satisfaction)
    downgrade_rate: float = 0.006  # daily chance a paid user downgrades (average)
    songs: int = 20000
    artists: int = 4000
    drift_day: int | None = None  # from this day on, adverts (and errors) double
    advert_multiplier: float = 2.0
    error_multiplier: float = 3.0

    def __post_init__(self) -> None:
        if self.users < 1 or self.days < 1:
            raise InputError(
                f"users and days have to be >= 1. Got users={self.users}, days={self.days}."
            )


@dataclass
class SimResult:
    """What a simulation wrote."""

    out: Path
    truth: Path
    events: int = 0
    users: int = 0
    churned: int = 0
    guest_events: int = 0
    page_counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def truth_path(out: Path) -> Path:
    """Where the ground truth of a simulated log goes: beside it, `<stem>.truth.parquet`."""
    name = out.name
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return out.with_name(name + ".truth.parquet")


class _Users:
    """Per-user state, as arrays that grow when users arrive."""

    def __init__(self) -> None:
        self.cols: dict[str, np.ndarray] = {}

    def add(self, **cols: np.ndarray) -> None:
        for k, v in cols.items():
            self.cols[k] = np.concatenate([self.cols[k], v]) if k in self.cols else v

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            col: np.ndarray = self.__dict__["cols"][name]
        except KeyError:
            raise AttributeError(name) from None
        return col

    def __len__(self) -> int:
        return len(self.cols.get("uid", ()))


def simulate(
    cfg: SimConfig,
    out: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> SimResult:
    """Write a simulated log to `out` (.jsonl.gz / .jsonl / .parquet) and its ground truth."""
    started = datetime.now(UTC)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fmt = "parquet" if out.suffix == ".parquet" else "json"
    gz = out.suffix == ".gz"
    if fmt == "json" and not any(s in (".json", ".jsonl") for s in out.suffixes):
        raise InputError(f"--out has to end in .jsonl.gz, .jsonl or .parquet. Got {out.name!r}.")
    rng = np.random.default_rng(cfg.seed)
    catalog = _catalog(rng, cfg)
    users = _Users()
    _arrive(users, rng, cfg, cfg.users, day=-1)
    arrivals = cfg.arrivals_per_day if cfg.arrivals_per_day is not None else 0.005 * cfg.users
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET threads = 1")  # deterministic, and leaves a core for compression
    result = SimResult(out=out, truth=truth_path(out))
    counts = np.zeros(len(PAGES), dtype=np.int64)
    truth_writer: pq.ParquetWriter | None = None
    pq_writer: pq.ParquetWriter | None = None
    session_counter = [1]
    with out.open("wb") as fh:
        for day in range(cfg.days):
            n_new = int(rng.poisson(arrivals))
            if n_new:
                _arrive(users, rng, cfg, n_new, day=day)
            table, truth = _simulate_day(users, rng, cfg, catalog, day, session_counter)
            counts += np.bincount(table["page_idx"].to_numpy(), minlength=len(PAGES))
            table = table.drop_columns(["page_idx"])
            result.events += table.num_rows
            result.guest_events += int(np.sum(table["userId"].to_numpy(zero_copy_only=False) == ""))
            if fmt == "json":
                fh.write(_json_block(con, table, gz=gz))
            else:
                pq_writer = pq_writer or pq.ParquetWriter(fh, table.schema, compression="zstd")
                pq_writer.write_table(table)
            truth_writer = truth_writer or pq.ParquetWriter(result.truth, truth.schema)
            truth_writer.write_table(truth)
            if progress is not None:
                progress(1)
        if pq_writer is not None:
            pq_writer.close()
    if truth_writer is not None:
        truth_writer.close()
    result.users = len(users)
    result.churned = int((users.churn_day >= 0).sum())
    result.page_counts = {PAGES[i]: int(c) for i, c in enumerate(counts) if c}
    result.seconds = (datetime.now(UTC) - started).total_seconds()
    return result


def _catalog(rng: np.random.Generator, cfg: SimConfig) -> dict[str, np.ndarray]:
    """Songs with artists, lengths and Zipf-like popularity."""
    artist_of = rng.integers(0, cfg.artists, cfg.songs)
    popularity = 1.0 / np.arange(1, cfg.songs + 1) ** 0.9
    rng.shuffle(popularity)
    return {
        "artist": np.array([f"Artist {a:04d}" for a in range(cfg.artists)], dtype=object)[
            artist_of
        ],
        "song": np.array([f"Song {s:05d}" for s in range(cfg.songs)], dtype=object),
        "length": np.round(rng.lognormal(np.log(235.0), 0.3, cfg.songs), 5),
        "cdf": np.cumsum(popularity) / popularity.sum(),
    }


def _arrive(users: _Users, rng: np.random.Generator, cfg: SimConfig, n: int, *, day: int) -> None:
    """Add `n` users: the initial population (day -1, registered earlier) or new arrivals."""
    start = len(users)
    day0 = datetime(cfg.start.year, cfg.start.month, cfg.start.day, tzinfo=UTC).timestamp()
    if day < 0:
        reg = day0 - rng.uniform(1, 365, n) * 86400
        paid = rng.random(n) < 0.35
    else:
        reg = day0 + day * 86400 + rng.uniform(6, 22, n) * 3600
        paid = np.zeros(n, dtype=bool)
    engagement = rng.normal(0.0, 1.0, n)
    baseline = rng.normal(0.4, 0.5, n)
    users.add(
        uid=np.arange(start + 1, start + n + 1),
        gender=rng.choice(np.array(["M", "F"], dtype=object), n),
        first=rng.choice(np.array(_FIRST, dtype=object), n),
        last=rng.choice(np.array(_LAST, dtype=object), n),
        city=rng.choice(np.array(_CITIES, dtype=object), n, p=_city_weights()),
        agent=rng.choice(np.array(_AGENTS, dtype=object), n),
        reg_ms=(np.floor(reg) * 1000).astype(np.int64),
        arrival_day=np.full(n, day, dtype=np.int64),
        paid=paid,
        engagement=engagement,
        baseline=baseline,
        satisfaction=baseline + rng.normal(0, 0.3, n),
        churn_day=np.full(n, -1, dtype=np.int64),
        busy_until=np.zeros(n),  # time of the user's last event so far
        ad_tolerance=rng.lognormal(0.0, 0.5, n),
    )


def _city_weights() -> np.ndarray:
    w = 1.0 / np.arange(1, len(_CITIES) + 1) ** 0.7
    return np.asarray(w / w.sum())


def _segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For groups of sizes `counts`: the group index of each element and its rank in the group."""
    group = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return group, rank


def _simulate_day(
    users: _Users,
    rng: np.random.Generator,
    cfg: SimConfig,
    catalog: dict[str, np.ndarray],
    day: int,
    session_counter: list[int],
) -> tuple[pa.Table, pa.Table]:
    """One day for every user: hazard, sessions, events, experience, churn and level changes."""
    day0 = datetime(cfg.start.year, cfg.start.month, cfg.start.day, tzinfo=UTC) + timedelta(
        days=day
    )
    day_s = day0.timestamp()
    weekend = day0.weekday() >= 5
    drifted = cfg.drift_day is not None and day >= cfg.drift_day
    alive = np.flatnonzero((users.churn_day < 0) & (users.arrival_day <= day))
    sat = users.satisfaction[alive]
    eng = users.engagement[alive]
    paid = users.paid[alive]
    # 1. hazard from the state at the start of the day
    logit = (
        np.log(cfg.base_hazard / (1 - cfg.base_hazard))
        - cfg.hazard_satisfaction * (sat - 0.4)
        - cfg.hazard_engagement * np.minimum(eng, 1.5)
        + cfg.hazard_free * (~paid)
    )
    new_user = users.arrival_day[alive] == day
    hazard = np.where(new_user, 0.0, 1.0 / (1.0 + np.exp(-logit)))
    churns = rng.random(len(alive)) < hazard
    truth = pa.table(
        {
            "user_id": pa.array(users.uid[alive].astype(str)),
            "date": pa.array(np.full(len(alive), day0.date()), pa.date32()),
            "hazard": hazard,
            "satisfaction": sat,
            "engagement": eng,
            "level": np.where(paid, "paid", "free"),
            "churned": churns,
        }
    )
    # 2. sessions per user: rhythm by weekday, fewer when unhappy; churners and new users get one
    rate = cfg.sessions_per_day * np.exp(0.6 * eng - 0.15) * (1.15 if weekend else 0.95)
    rate = rate / (1.0 + np.exp(-2.0 * (sat + 0.3)))
    n_sess = rng.poisson(rate)
    n_sess = np.where((churns | new_user) & (n_sess == 0), 1, n_sess)
    s_user, _ = _segments(n_sess)  # index into alive
    n_s = len(s_user)
    hours = np.clip(
        np.where(rng.random(n_s) < 0.6, rng.normal(19.5, 2.5, n_s), rng.normal(11.0, 3.0, n_s)),
        0.0,
        23.5,
    )
    hours = hours[np.lexsort((hours, s_user))]  # a user's sessions in time order
    s_len = 1 + rng.geometric(1.0 / cfg.events_per_session, n_s)
    s_len = np.minimum(s_len, 400)
    s_ids = session_counter[0] + np.arange(n_s)
    session_counter[0] += n_s
    # 3. events and pages
    e_sess, e_rank = _segments(s_len)
    e_user = s_user[e_sess]
    n_e = len(e_sess)
    diss = np.clip(0.4 - sat, -1.0, 3.0)[e_user]
    pages = _draw_pages(rng, diss, paid[e_user], cfg, drifted)
    # first event of a new user's first session is the registration
    first_of_day = np.r_[True, e_user[1:] != e_user[:-1]]
    pages[first_of_day & new_user[e_user]] = P["Submit Registration"]
    # level changes: at most one per user and day, the Submit follows an Upgrade/Downgrade view
    level_paid = paid[e_user].copy()
    sat_u = np.clip(sat, -2, 2)
    up = (~paid) & (rng.random(len(alive)) < cfg.upgrade_rate * np.exp(0.8 * sat_u))
    down = paid & (rng.random(len(alive)) < cfg.downgrade_rate * np.exp(-0.9 * sat_u))
    change = (up | down) & (n_sess > 0) & ~churns
    pos = _pick_event(rng, e_user, change, len(alive))
    ok = pos >= 0
    idx = pos[ok]
    who = np.flatnonzero(ok)
    pages[idx] = np.where(paid[who], P["Submit Downgrade"], P["Submit Upgrade"])
    prev = idx - 1
    same = (prev >= 0) & (e_sess[np.maximum(prev, 0)] == e_sess[idx])
    pages[prev[same]] = np.where(paid[who[same]], P["Downgrade"], P["Upgrade"])
    flip = np.zeros(n_e, dtype=np.int64)
    flip[idx] = 1
    changed_before = (np.cumsum(flip) - flip) - _group_start_values(np.cumsum(flip) - flip, e_user)
    level_paid = np.where(changed_before > 0, ~level_paid, level_paid)
    users.paid[alive[who]] = ~paid[who]
    # timestamps: songs take their length, other pages a few seconds
    song = np.searchsorted(catalog["cdf"], rng.random(n_e))
    song = np.minimum(song, len(catalog["cdf"]) - 1)
    is_song = pages == P["NextSong"]
    gap = np.where(is_song, catalog["length"][song], rng.uniform(2, 40, n_e))
    elapsed = np.cumsum(gap) - gap
    elapsed = elapsed - _group_start_values(elapsed, e_sess)
    # a user's sessions of the day follow each other: each starts after the previous ended
    duration = np.bincount(e_sess, weights=gap, minlength=n_s) + 600.0
    before = np.cumsum(duration) - duration
    s_start = day_s + hours * 3600 + before - _group_start_values(before, s_user)
    # ... and after yesterday's last session, which may have run past midnight
    late = np.maximum(users.busy_until[alive[s_user]] + 600.0 - s_start, 0.0)
    s_start = s_start + _group_start_values(late, s_user)
    ts_s = np.floor(s_start[e_sess] + elapsed)
    # 5. churners: Cancel and Cancellation Confirmation end their last session of the day
    ch_users = np.flatnonzero(churns)
    last_sess = np.full(len(alive), -1)
    last_sess[s_user] = np.arange(n_s)  # the last session of each user wins
    ch_sess = last_sess[ch_users]
    ch_last_ts = np.full(n_s, -np.inf)
    np.maximum.at(ch_last_ts, e_sess, ts_s)
    base = ch_last_ts[ch_sess]
    extra_sess = np.repeat(ch_sess, 2)
    extra_user = np.repeat(ch_users, 2)
    extra_pages = np.tile([P["Cancel"], P["Cancellation Confirmation"]], len(ch_users))
    extra_ts = np.repeat(base, 2) + np.tile([5.0, 7.0], len(ch_users))
    extra_rank = np.repeat(s_len[ch_sess], 2) + np.tile([0, 1], len(ch_users))
    users.churn_day[alive[ch_users]] = day
    busy = users.busy_until
    np.maximum.at(busy, alive[e_user], ts_s)
    # 4. experience feeds back into satisfaction
    per_user = np.zeros((len(alive), len(PAGES)))
    np.add.at(per_user, (e_user, pages), 1.0)
    songs_u = per_user[:, P["NextSong"]]
    shock = (
        -0.02 * per_user[:, P["Roll Advert"]] / users.ad_tolerance[alive]
        - 0.06 * per_user[:, P["Thumbs Down"]]
        - 0.10 * per_user[:, P["Error"]]
        + 0.012 * per_user[:, P["Thumbs Up"]]
        + 0.002 * songs_u
    )
    base_sat = users.baseline[alive]
    users.satisfaction[alive] = (
        sat + 0.08 * (base_sat - sat) + shock + rng.normal(0, 0.05, len(alive))
    )
    # assemble the day's table (logged-in events, churn events, guests), sorted by time
    all_user = np.concatenate([e_user, extra_user])
    all_sess = np.concatenate([e_sess, extra_sess])
    all_pages = np.concatenate([pages, extra_pages])
    all_ts = np.concatenate([ts_s, extra_ts])
    all_rank = np.concatenate([e_rank, extra_rank])
    all_level = np.concatenate([level_paid, paid[extra_user]])
    all_song = np.concatenate([np.where(is_song, song, -1), np.full(len(extra_user), -1)])
    g = _guests(rng, cfg, n_e, day_s, session_counter)
    order = np.argsort(all_ts, kind="stable")
    uidx = alive[all_user[order]]
    table = _table(users, catalog, uidx, s_ids[all_sess[order]], all_pages[order],
                   all_ts[order], all_rank[order], all_level[order], all_song[order])  # fmt: skip
    if g is not None:
        table = pa.concat_tables([table, g]).sort_by([("ts", "ascending")])
    return table, truth


def _group_start_values(values: np.ndarray, group: np.ndarray) -> np.ndarray:
    """For each element, `values` at the first element of its (contiguous) group."""
    if len(values) == 0:
        return values
    starts = np.r_[True, group[1:] != group[:-1]]
    idx = np.maximum.accumulate(np.where(starts, np.arange(len(values)), 0))
    return values[idx]


def _pick_event(
    rng: np.random.Generator, e_user: np.ndarray, want: np.ndarray, n_users: int
) -> np.ndarray:
    """For each user with `want`, the index of one random event of theirs today (-1: none)."""
    pos = np.full(n_users, -1)
    counts = np.bincount(e_user, minlength=n_users)
    first = np.cumsum(counts) - counts
    sel = want & (counts > 0)
    offset = (rng.random(n_users) * counts).astype(np.int64)
    pos[sel] = first[sel] + offset[sel]
    return pos


def _draw_pages(
    rng: np.random.Generator,
    diss: np.ndarray,
    paid: np.ndarray,
    cfg: SimConfig,
    drifted: bool,
) -> np.ndarray:
    """Draw one page per event from a mix that depends on dissatisfaction and level."""
    names = list(_WEIGHTS)
    w = np.empty((len(diss), len(names) + 1))
    for j, name in enumerate(names):
        base, slope = _WEIGHTS[name]
        w[:, j] = np.maximum(base + slope * diss, base * 0.2)
    err = names.index("Error")
    advert = np.where(paid, _ADVERT_PAID, _ADVERT_FREE)
    if drifted:
        advert = advert * cfg.advert_multiplier
        w[:, err] *= cfg.error_multiplier
    w[:, -1] = advert
    # paid users look at the downgrade page when unhappy; free users at the upgrade page
    extra = np.where(paid, np.maximum(0.004 + 0.004 * diss, 0.001), 0.0015)
    w = np.concatenate([w, extra[:, None]], axis=1)
    w /= w.sum(axis=1, keepdims=True)
    cdf = np.cumsum(w, axis=1)
    u = rng.random(len(diss))[:, None]
    choice = (u > cdf).sum(axis=1)
    choice = np.minimum(choice, len(names) + 1)
    lookup = np.array([P[n] for n in names] + [P["Roll Advert"], P["Downgrade"]])
    pages = lookup[choice]
    pages[(pages == P["Downgrade"]) & ~paid] = P["Upgrade"]
    return np.asarray(pages)


def _guests(
    rng: np.random.Generator,
    cfg: SimConfig,
    n_events: int,
    day_s: float,
    session_counter: list[int],
) -> pa.Table | None:
    """Guest and logged-out browsing: short sessions with an empty user id."""
    n = int(rng.poisson(n_events * cfg.guest_share / (1 - cfg.guest_share)))
    if n == 0:
        return None
    n_sess = max(1, n // 3)
    sess = rng.integers(0, n_sess, n)
    sess.sort()
    _, rank = _segments(np.bincount(sess, minlength=n_sess))
    start = day_s + rng.uniform(0, 86000, n_sess)
    ts = np.floor(start[sess] + rank * rng.uniform(3, 30, n))
    gi = rng.choice(len(_GUEST_PAGES), n, p=_GUEST_P)
    pages = np.array(_GUEST_PAGES, dtype=object)[gi]
    auth = np.where(np.isin(pages, ["Register", "Submit Registration"]), "Guest", "Logged Out")
    return pa.table(
        {
            "ts": pa.array((ts * 1000).astype(np.int64)),
            "userId": pa.array([""] * n),
            "sessionId": pa.array(session_counter[0] + sess),
            "page": pa.array(pages.astype(str)),
            "auth": pa.array(auth),
            "method": pa.array(
                np.where(np.isin(pages, ["Login", "Submit Registration"]), "PUT", "GET")
            ),
            "status": pa.array(
                np.where(pages == "Error", 404, np.where(pages == "Login", 307, 200)).astype(
                    np.int64
                )
            ),
            "level": pa.array(["free"] * n),
            "itemInSession": pa.array(rank.astype(np.int64)),
            "location": pa.nulls(n, pa.string()),
            "userAgent": pa.nulls(n, pa.string()),
            "lastName": pa.nulls(n, pa.string()),
            "firstName": pa.nulls(n, pa.string()),
            "registration": pa.nulls(n, pa.int64()),
            "gender": pa.nulls(n, pa.string()),
            "artist": pa.nulls(n, pa.string()),
            "song": pa.nulls(n, pa.string()),
            "length": pa.nulls(n, pa.float64()),
            "page_idx": pa.array(np.array([P[p] for p in _GUEST_PAGES], dtype=np.int64)[gi]),
        }
    )


def _table(
    users: _Users,
    catalog: dict[str, np.ndarray],
    uidx: np.ndarray,
    session: np.ndarray,
    pages: np.ndarray,
    ts_s: np.ndarray,
    rank: np.ndarray,
    level_paid: np.ndarray,
    song: np.ndarray,
) -> pa.Table:
    """The Sparkify-schema table of logged-in events (page names still as indices too)."""
    page_names = np.array(PAGES, dtype=object)[pages]
    method = np.array([_METHOD.get(p, "GET") for p in PAGES], dtype=object)[pages]
    status = np.array([_STATUS.get(p, 200) for p in PAGES], dtype=np.int64)[pages]
    auth = np.where(pages == P["Cancellation Confirmation"], "Cancelled", "Logged In")
    has_song = song >= 0
    safe = np.maximum(song, 0)
    return pa.table(
        {
            "ts": pa.array((ts_s * 1000).astype(np.int64)),
            "userId": pa.array(users.uid[uidx].astype(str)),
            "sessionId": pa.array(session.astype(np.int64)),
            "page": pa.array(page_names.astype(str)),
            "auth": pa.array(auth),
            "method": pa.array(method.astype(str)),
            "status": pa.array(status),
            "level": pa.array(np.where(level_paid, "paid", "free")),
            "itemInSession": pa.array(rank.astype(np.int64)),
            "location": pa.array(users.city[uidx].astype(str)),
            "userAgent": pa.array(users.agent[uidx].astype(str)),
            "lastName": pa.array(users.last[uidx].astype(str)),
            "firstName": pa.array(users.first[uidx].astype(str)),
            "registration": pa.array(users.reg_ms[uidx]),
            "gender": pa.array(users.gender[uidx].astype(str)),
            "artist": pa.array(catalog["artist"][safe].astype(str), mask=~has_song),
            "song": pa.array(catalog["song"][safe].astype(str), mask=~has_song),
            "length": pa.array(catalog["length"][safe], mask=~has_song),
            "page_idx": pa.array(pages.astype(np.int64)),
        }
    )


_ALWAYS = [
    "ts",
    "userId",
    "sessionId",
    "page",
    "auth",
    "method",
    "status",
    "level",
    "itemInSession",
]
_USER = ["location", "userAgent", "lastName", "firstName", "registration", "gender"]
_SONG = ["artist", "song", "length"]


def _json_block(con: duckdb.DuckDBPyConnection, table: pa.Table, *, gz: bool) -> bytes:
    """The day's events as JSON lines, keys in Sparkify order and, as eventsim does, without
    the keys an event does not have (guests: no user fields; non-song pages: no song fields).
    Optionally one gzip member with mtime 0, so the same input gives the same bytes."""

    def obj(cols: list[str]) -> str:
        return "json_object(" + ", ".join(f"'{c}', \"{c}\"" for c in cols) + ")"

    con.register("day_tbl", table)
    col = (
        con.sql(
            f"""SELECT CASE WHEN "userId" = '' THEN {obj(_ALWAYS)}
                            WHEN song IS NULL THEN {obj(_ALWAYS + _USER)}
                            ELSE {obj(_ALWAYS + _USER + _SONG)} END || chr(10)
                FROM day_tbl"""
        )
        .to_arrow_table()
        .column(0)
        .combine_chunks()
    )
    con.unregister("day_tbl")
    body = _concat_strings(col)
    if not gz:
        return body
    comp = isal_zlib.compressobj(2, isal_zlib.DEFLATED, 31)
    return bytes(comp.compress(body) + comp.flush())


def _concat_strings(arr: pa.Array) -> bytes:
    """All values of a string array, back to back, read straight from its data buffer."""
    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.large_string())
    _, offsets_buf, data = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32 if arr.type == pa.string() else np.int64)
    start, end = int(offsets[arr.offset]), int(offsets[arr.offset + len(arr)])
    return bytes(memoryview(data)[start:end])


def summary(result: SimResult) -> dict[str, Any]:
    """Headline figures of a simulation, for the CLI and the tests."""
    total = max(result.events, 1)
    return {
        "events": result.events,
        "users": result.users,
        "churned": result.churned,
        "churn_rate": result.churned / max(result.users, 1),
        "next_song_share": result.page_counts.get("NextSong", 0) / total,
        "seconds": result.seconds,
    }
