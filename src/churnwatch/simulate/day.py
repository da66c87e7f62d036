"""One simulated day, step by step (the steps of the package docstring)."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pyarrow as pa

from churnwatch.simulate.output import events_table
from churnwatch.simulate.world import (
    _GUEST_P,
    _GUEST_PAGES,
    PAGES,
    P,
    SimConfig,
    Users,
    draw_pages,
    group_start_values,
    pick_event,
    segments,
)


def simulate_day(
    users: Users,
    rng: np.random.Generator,
    cfg: SimConfig,
    catalog: dict[str, np.ndarray],
    day: int,
    session_counter: list[int],
) -> tuple[pa.Table, pa.Table]:
    """One day for every user, the steps of the package docstring in their order. The order
    of the random draws is the order of the steps: the same seed gives the same bytes."""
    day0 = cfg.midnight(day)
    drifted = cfg.drift_day is not None and day >= cfg.drift_day
    alive = np.flatnonzero((users.churn_day < 0) & (users.arrival_day <= day))
    sat, paid = users.satisfaction[alive], users.paid[alive]
    new_user = users.arrival_day[alive] == day
    churns, truth = _hazard(users, alive, rng, cfg, new_user, day0)
    n_sess, s_user, hours, s_len = _sessions(
        rng, cfg, users.engagement[alive], sat, day0.weekday() >= 5, churns | new_user
    )
    s_ids = session_counter[0] + np.arange(len(s_user))
    session_counter[0] += len(s_user)
    e_sess, e_rank = segments(s_len)
    e_user = s_user[e_sess]
    pages = _pages(rng, cfg, sat, paid, new_user, e_user, drifted)
    level_paid = _level_changes(users, alive, rng, cfg, n_sess > 0, churns, pages, e_user, e_sess)
    ts_s, song = _timestamps(users, alive, rng, catalog, pages, e_sess, s_user, hours,
                             day0.timestamp())  # fmt: skip
    extra = _churn_events(users, alive, day, churns, s_user, e_sess, ts_s, s_len)
    _experience(users, alive, rng, sat, e_user, pages)
    # the day's table: logged-in events, churn events and guests, sorted by time
    is_song = pages == P["NextSong"]
    all_user = np.concatenate([e_user, extra["user"]])
    all_sess = np.concatenate([e_sess, extra["sess"]])
    all_pages = np.concatenate([pages, extra["pages"]])
    all_ts = np.concatenate([ts_s, extra["ts"]])
    all_rank = np.concatenate([e_rank, extra["rank"]])
    all_level = np.concatenate([level_paid, paid[extra["user"]]])
    all_song = np.concatenate([np.where(is_song, song, -1), np.full(len(extra["user"]), -1)])
    g = guests(rng, cfg, len(e_sess), day0.timestamp(), session_counter)
    order = np.argsort(all_ts, kind="stable")
    uidx = alive[all_user[order]]
    table = events_table(
        users, catalog, uidx, s_ids[all_sess[order]], all_pages[order], all_ts[order],
        all_rank[order], all_level[order], all_song[order],
    )  # fmt: skip
    if g is not None:
        table = pa.concat_tables([table, g]).sort_by([("ts", "ascending")])
    return table, truth


def _hazard(
    users: Users,
    alive: np.ndarray,
    rng: np.random.Generator,
    cfg: SimConfig,
    new_user: np.ndarray,
    day0: datetime,
) -> tuple[np.ndarray, pa.Table]:
    """1. Who churns today, from the hazard at the start of the day; and the ground truth."""
    sat, eng, paid = users.satisfaction[alive], users.engagement[alive], users.paid[alive]
    logit = (
        np.log(cfg.base_hazard / (1 - cfg.base_hazard))
        - cfg.hazard_satisfaction * (sat - 0.4)
        - cfg.hazard_engagement * np.minimum(eng, 1.5)
        + cfg.hazard_free * (~paid)
    )
    hazard = np.where(new_user, 0.0, 1.0 / (1.0 + np.exp(-logit)))  # no churn on day one
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
    return churns, truth


def _sessions(
    rng: np.random.Generator,
    cfg: SimConfig,
    eng: np.ndarray,
    sat: np.ndarray,
    weekend: bool,
    must_come: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """2. Sessions per user (rhythm by weekday, fewer when unhappy; churners and new users come
    at least once): their count per user, each session's user, start hour and length."""
    rate = cfg.sessions_per_day * np.exp(0.6 * eng - 0.15) * (1.15 if weekend else 0.95)
    rate = rate / (1.0 + np.exp(-2.0 * (sat + 0.3)))
    n_sess = rng.poisson(rate)
    n_sess = np.where(must_come & (n_sess == 0), 1, n_sess)
    s_user, _ = segments(n_sess)  # index into the alive users
    n_s = len(s_user)
    # evening sessions (60 %) around 19:30, the others around 11:00
    hours = np.clip(
        np.where(rng.random(n_s) < 0.6, rng.normal(19.5, 2.5, n_s), rng.normal(11.0, 3.0, n_s)),
        0.0,
        23.5,
    )
    hours = hours[np.lexsort((hours, s_user))]  # a user's sessions in time order
    s_len = np.minimum(1 + rng.geometric(1.0 / cfg.events_per_session, n_s), 400)
    return n_sess, s_user, hours, s_len


def _pages(
    rng: np.random.Generator,
    cfg: SimConfig,
    sat: np.ndarray,
    paid: np.ndarray,
    new_user: np.ndarray,
    e_user: np.ndarray,
    drifted: bool,
) -> np.ndarray:
    """3. One page per event; a new user's first event is the registration."""
    diss = np.clip(0.4 - sat, -1.0, 3.0)[e_user]  # dissatisfaction, per event
    pages = draw_pages(rng, diss, paid[e_user], cfg, drifted)
    first_of_day = np.r_[True, e_user[1:] != e_user[:-1]]
    pages[first_of_day & new_user[e_user]] = P["Submit Registration"]
    return pages


def _level_changes(
    users: Users,
    alive: np.ndarray,
    rng: np.random.Generator,
    cfg: SimConfig,
    came: np.ndarray,
    churns: np.ndarray,
    pages: np.ndarray,
    e_user: np.ndarray,
    e_sess: np.ndarray,
) -> np.ndarray:
    """4. Upgrades of happy free users and downgrades of unhappy paid ones: at most one per user
    and day, the Submit follows an Upgrade/Downgrade view. Writes the pages and the users'
    level; returns the level at each event."""
    paid = users.paid[alive]
    level_paid = paid[e_user].copy()
    sat_u = np.clip(users.satisfaction[alive], -2, 2)
    up = (~paid) & (rng.random(len(alive)) < cfg.upgrade_rate * np.exp(0.8 * sat_u))
    down = paid & (rng.random(len(alive)) < cfg.downgrade_rate * np.exp(-0.9 * sat_u))
    change = (up | down) & came & ~churns
    pos = pick_event(rng, e_user, change, len(alive))
    ok = pos >= 0
    idx = pos[ok]  # the event that becomes the Submit
    who = np.flatnonzero(ok)
    pages[idx] = np.where(paid[who], P["Submit Downgrade"], P["Submit Upgrade"])
    prev = idx - 1  # the view before it, when in the same session
    same = (prev >= 0) & (e_sess[np.maximum(prev, 0)] == e_sess[idx])
    pages[prev[same]] = np.where(paid[who[same]], P["Downgrade"], P["Upgrade"])
    # events after the change carry the new level
    flip = np.zeros(len(e_user), dtype=np.int64)
    flip[idx] = 1
    changed_before = (np.cumsum(flip) - flip) - group_start_values(np.cumsum(flip) - flip, e_user)
    users.paid[alive[who]] = ~paid[who]
    return np.asarray(np.where(changed_before > 0, ~level_paid, level_paid))


def _timestamps(
    users: Users,
    alive: np.ndarray,
    rng: np.random.Generator,
    catalog: dict[str, np.ndarray],
    pages: np.ndarray,
    e_sess: np.ndarray,
    s_user: np.ndarray,
    hours: np.ndarray,
    day_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """5. Each event's time (songs take their length, other pages a few seconds) and song;
    each user's sessions follow each other, and yesterday's last one."""
    n_e, n_s = len(pages), len(s_user)
    song = np.searchsorted(catalog["cdf"], rng.random(n_e))
    song = np.minimum(song, len(catalog["cdf"]) - 1)
    gap = np.where(pages == P["NextSong"], catalog["length"][song], rng.uniform(2, 40, n_e))
    elapsed = np.cumsum(gap) - gap
    elapsed = elapsed - group_start_values(elapsed, e_sess)
    # a user's sessions of the day follow each other: each starts after the previous ended
    duration = np.bincount(e_sess, weights=gap, minlength=n_s) + 600.0
    before = np.cumsum(duration) - duration
    s_start = day_s + hours * 3600 + before - group_start_values(before, s_user)
    # ... and after yesterday's last session, which may have run past midnight
    late = np.maximum(users.busy_until[alive[s_user]] + 600.0 - s_start, 0.0)
    s_start = s_start + group_start_values(late, s_user)
    ts_s = np.floor(s_start[e_sess] + elapsed)
    np.maximum.at(users.busy_until, alive[s_user[e_sess]], ts_s)
    return ts_s, song


def _churn_events(
    users: Users,
    alive: np.ndarray,
    day: int,
    churns: np.ndarray,
    s_user: np.ndarray,
    e_sess: np.ndarray,
    ts_s: np.ndarray,
    s_len: np.ndarray,
) -> dict[str, np.ndarray]:
    """6. Churners end their last session of the day with Cancel and Cancellation
    Confirmation: those events' user, session, page, time and rank in the session."""
    ch_users = np.flatnonzero(churns)
    last_sess = np.full(len(alive), -1)
    last_sess[s_user] = np.arange(len(s_user))  # the last session of each user wins
    ch_sess = last_sess[ch_users]
    ch_last_ts = np.full(len(s_user), -np.inf)
    np.maximum.at(ch_last_ts, e_sess, ts_s)
    users.churn_day[alive[ch_users]] = day
    n = len(ch_users)
    return {
        "user": np.repeat(ch_users, 2),
        "sess": np.repeat(ch_sess, 2),
        "pages": np.tile([P["Cancel"], P["Cancellation Confirmation"]], n),
        "ts": np.repeat(ch_last_ts[ch_sess], 2) + np.tile([5.0, 7.0], n),
        "rank": np.repeat(s_len[ch_sess], 2) + np.tile([0, 1], n),
    }


def _experience(
    users: Users,
    alive: np.ndarray,
    rng: np.random.Generator,
    sat: np.ndarray,
    e_user: np.ndarray,
    pages: np.ndarray,
) -> None:
    """7. Experience feeds back into satisfaction: adverts (as the user tolerates them),
    thumbs down and errors lower it, thumbs up and songs raise it; it drifts back towards the
    user's own baseline, with noise."""
    per_user = np.zeros((len(alive), len(PAGES)))
    np.add.at(per_user, (e_user, pages), 1.0)
    shock = (
        -0.02 * per_user[:, P["Roll Advert"]] / users.ad_tolerance[alive]
        - 0.06 * per_user[:, P["Thumbs Down"]]
        - 0.10 * per_user[:, P["Error"]]
        + 0.012 * per_user[:, P["Thumbs Up"]]
        + 0.002 * per_user[:, P["NextSong"]]
    )
    base_sat = users.baseline[alive]
    users.satisfaction[alive] = (
        sat + 0.08 * (base_sat - sat) + shock + rng.normal(0, 0.05, len(alive))
    )


def guests(
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
    _, rank = segments(np.bincount(sess, minlength=n_sess))
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
