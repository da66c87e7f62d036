"""The feature and label SQL, written once (DuckDB dialect) and run on DuckDB or, transpiled
by sqlglot, on Spark.

Inputs, as views of the same name on either engine:
- `ev`: one row per event: user_id, ts_us (BIGINT, microseconds since epoch, UTC), day
  (BIGINT, days since epoch), session_id, page, level, gender, registration_us, artist, length,
  location, user_agent;
- `cutoffs`: cutoff_day (BIGINT);
- `params`: one row: horizon_days, inactivity_days, data_start_day, data_end_us (BIGINT).

The SQL keeps to a portable subset: integer day numbers and microseconds instead of date
functions, explicit DOUBLE casts before division, no engine-specific functions. Values are
never pasted into it: they come from `params` and `cutoffs`.
"""

from __future__ import annotations

from churnwatch.features.catalog import (
    CHURN_PAGES,
    EXPOSURE_COUNTS,
    PAGES,
    WINDOWS,
    catalog,
    wname,
)
from churnwatch.labels import US_PER_DAY, ChurnDefinition

_CHURN = ", ".join(f"'{p}'" for p in CHURN_PAGES)


def _d(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE)"


def daily_sql() -> str:
    """Per user and day: page counts, listening, session pieces, new artists, last state.

    Churn pages are left out: they are the churn act, never a feature.
    """
    pages = ",\n      ".join(
        f"SUM(CASE WHEN page = '{page}' THEN 1 ELSE 0 END) AS {slug}"
        for slug, page in PAGES.items()
    )
    return f"""
    WITH e AS (SELECT * FROM ev WHERE page NOT IN ({_CHURN})),
    pieces AS (
      SELECT user_id, day, session_id, MAX(ts_us) - MIN(ts_us) AS dur_us
      FROM e GROUP BY user_id, day, session_id),
    sess AS (
      SELECT user_id, day, COUNT(*) AS sessions, SUM(dur_us) AS session_us
      FROM pieces GROUP BY user_id, day),
    art AS (
      SELECT user_id, first_day AS day, COUNT(*) AS new_artists
      FROM (SELECT user_id, artist, MIN(day) AS first_day FROM e
            WHERE page = 'NextSong' AND artist IS NOT NULL GROUP BY user_id, artist) a
      GROUP BY user_id, first_day),
    act AS (
      SELECT user_id, day,
      COUNT(*) AS events,
      {pages},
      SUM(CASE WHEN page = 'NextSong' THEN COALESCE(length, 0) ELSE 0 END) AS listen_s,
      MIN(ts_us) AS first_us,
      MAX(ts_us) AS last_us,
      MIN(registration_us) AS reg_us,
      ARG_MAX(level, ts_us * 2 + CASE WHEN level = 'paid' THEN 1 ELSE 0 END) AS last_level,
      MAX(CASE WHEN gender IN ('M', 'F') THEN gender END) AS gender_known,
      ARG_MAX(location, ts_us) AS last_location,
      ARG_MAX(user_agent, ts_us) AS last_agent
      FROM e GROUP BY user_id, day)
    SELECT act.*, COALESCE(sess.sessions, 0) AS sessions,
           COALESCE(sess.session_us, 0) AS session_us,
           COALESCE(art.new_artists, 0) AS new_artists
    FROM act
    LEFT JOIN sess ON sess.user_id = act.user_id AND sess.day = act.day
    LEFT JOIN art ON art.user_id = act.user_id AND art.day = act.day"""


def churn_days_sql(definition: ChurnDefinition) -> str:
    """Per user and day: cancellations, label events, first and last event (all pages)."""
    label_pages = ["Cancellation Confirmation"]
    if definition.include_downgrade:
        label_pages.append("Submit Downgrade")
    labels = ", ".join(f"'{p}'" for p in label_pages)
    return f"""
    SELECT user_id, day,
      SUM(CASE WHEN page = 'Cancellation Confirmation' THEN 1 ELSE 0 END) AS cancels,
      SUM(CASE WHEN page IN ({labels}) THEN 1 ELSE 0 END) AS label_events,
      MIN(ts_us) AS first_us,
      MAX(ts_us) AS last_us
    FROM ev GROUP BY user_id, day"""


def _window_sums() -> list[str]:
    """SUMs over the daily table for every windowed count."""
    cols = [*PAGES, "events", "listen_s", "sessions", "session_us"]
    out: list[str] = []
    for w in WINDOWS:
        wn = wname(w)
        cond = f"d.day >= c.cutoff_day - {w}" if w else None
        for col in cols:
            expr = f"CASE WHEN {cond} THEN d.{col} ELSE 0 END" if cond else f"d.{col}"
            out.append(f"SUM({expr}) AS {col}_{wn}")
        active = f"CASE WHEN {cond} THEN 1 ELSE 0 END" if cond else "1"
        out.append(f"SUM({active}) AS active_days_{wn}")
    return out


def _derived() -> list[str]:
    """Every catalog feature, in catalog order, from the aggregated columns of `agg`."""
    exprs: dict[str, str] = {}
    for w in WINDOWS:
        wn = wname(w)
        obs = f"LEAST({w}, cutoff_day - first_day)" if w else "(cutoff_day - first_day)"
        exprs[f"observed_days_{wn}"] = obs
        for slug in PAGES:
            exprs[f"{slug}_{wn}"] = f"{slug}_{wn}"
            exprs[f"{slug}_per_day_{wn}"] = f"{_d(f'{slug}_{wn}')} / {obs}"
        exprs.update(
            {
                f"events_{wn}": f"events_{wn}",
                f"events_per_day_{wn}": f"{_d(f'events_{wn}')} / {obs}",
                f"listen_hours_{wn}": f"{_d(f'listen_s_{wn}')} / 3600",
                f"listen_hours_per_day_{wn}": f"{_d(f'listen_s_{wn}')} / 3600 / {obs}",
                f"sessions_{wn}": f"sessions_{wn}",
                f"sessions_per_day_{wn}": f"{_d(f'sessions_{wn}')} / {obs}",
                f"mean_session_minutes_{wn}": (
                    f"{_d(f'session_us_{wn}')} / 60000000 / NULLIF(sessions_{wn}, 0)"
                ),
                f"songs_per_session_{wn}": f"{_d(f'songs_{wn}')} / NULLIF(sessions_{wn}, 0)",
                f"active_days_{wn}": f"active_days_{wn}",
                f"active_share_{wn}": f"{_d(f'active_days_{wn}')} / {obs}",
                f"thumbs_down_share_{wn}": (
                    f"{_d(f'thumbs_down_{wn} + 1')} / "
                    f"{_d(f'thumbs_down_{wn} + thumbs_up_{wn} + 2')}"
                ),
                f"adverts_per_song_{wn}": f"{_d(f'adverts_{wn}')} / {_d(f'songs_{wn} + 1')}",
            }
        )
    obs_all = "(cutoff_day - first_day)"

    def trend(col: str) -> str:
        last = f"{_d(f'{col}_7d')} / LEAST(7, {obs_all})"
        before = f"{_d(f'{col}_28d - {col}_7d')} / (LEAST(28, {obs_all}) - 7)"
        return f"CASE WHEN {obs_all} > 7 THEN LN(({last} + 1) / ({before} + 1)) ELSE 0 END"

    td_last = f"{_d('thumbs_down_7d')} / LEAST(7, {obs_all})"
    td_before = f"{_d('thumbs_down_28d - thumbs_down_7d')} / (LEAST(28, {obs_all}) - 7)"
    cutoff_us = f"cutoff_day * {US_PER_DAY}"
    agent = "agent"
    exprs.update(
        {
            "distinct_artists": "distinct_artists",
            "artists_per_day_all": f"{_d('distinct_artists')} / {obs_all}",
            "mean_song_length": f"{_d('listen_s_all')} / NULLIF(songs_all, 0)",
            "tenure_days": f"{_d(f'{cutoff_us} - COALESCE(reg_us, first_us)')} / {US_PER_DAY}",
            "recency_days": f"{_d(f'{cutoff_us} - last_us')} / {US_PER_DAY}",
            "is_male": "CASE WHEN gender_known = 'M' THEN 1 ELSE 0 END",
            "is_paid": "CASE WHEN level = 'paid' THEN 1 ELSE 0 END",
            "level_changes_all": "upgrades_all + downgrades_all",
            "days_since_level_change": "cutoff_day - last_change_day",
            "trend_events": trend("events"),
            "trend_songs": trend("songs"),
            "trend_thumbs_down": f"CASE WHEN {obs_all} > 7 THEN {td_last} - {td_before} ELSE 0 END",
            "gender": "COALESCE(gender_known, 'unknown')",
            "level": "COALESCE(level, 'unknown')",
            "os_family": f"""CASE WHEN {agent} IS NULL THEN 'unknown'
                WHEN {agent} LIKE '%iPhone%' THEN 'iphone' WHEN {agent} LIKE '%iPad%' THEN 'ipad'
                WHEN {agent} LIKE '%Android%' THEN 'android'
                WHEN {agent} LIKE '%Windows%' THEN 'windows'
                WHEN {agent} LIKE '%Mac OS X%' OR {agent} LIKE '%Macintosh%' THEN 'mac'
                WHEN {agent} LIKE '%Linux%' THEN 'linux' ELSE 'other' END""",
            "browser_family": f"""CASE WHEN {agent} IS NULL THEN 'unknown'
                WHEN {agent} LIKE '%Firefox%' THEN 'firefox' WHEN {agent} LIKE '%Edge%' THEN 'edge'
                WHEN {agent} LIKE '%Chrome%' THEN 'chrome'
                WHEN {agent} LIKE '%Trident%' OR {agent} LIKE '%MSIE%' THEN 'ie'
                WHEN {agent} LIKE '%Safari%' THEN 'safari' ELSE 'other' END""",
            "state": (
                "COALESCE(NULLIF(REGEXP_EXTRACT(location, ', ([A-Z][A-Z])', 1), ''), 'unknown')"
            ),
        }
    )
    # exposure starts at registration or the log's first day, whichever is later, and never
    # after the user's first event
    reg_day = f"CAST(FLOOR({_d('reg_us')} / {US_PER_DAY}) AS BIGINT)"
    start = f"LEAST(first_day, GREATEST(data_start_day, COALESCE({reg_day}, first_day)))"
    exposure = f"(cutoff_day - {start})"
    exprs["exposure_days"] = exposure
    for col in EXPOSURE_COUNTS:
        exprs[f"{col}_per_exposure_day"] = f"{_d(f'{col}_all')} / {exposure}"
    return [f"{exprs[f.name]} AS {f.name}" for f in catalog()]


def _churn_parts(definition: ChurnDefinition) -> tuple[str, str, str, str, str]:
    """The parts of the snapshot SQL that depend on the churn definition: who is in the
    population at a cutoff, what counts as a hit within the horizon, how far ahead the label
    looks, the inactivity churn points (CTEs) and the table the hits come from."""
    if definition.kind == "cancellation":
        population = "(g.cancel_day IS NULL OR g.cancel_day >= a.cutoff_day)"
        hit = """MAX(CASE WHEN ch.label_events > 0 AND ch.day >= p.cutoff_day
                          AND ch.day < p.cutoff_day + prm.horizon_days THEN 1 ELSE 0 END)"""
        lookahead = "prm.horizon_days"
        points = ""
    else:
        population = f"a.cutoff_day * {US_PER_DAY} - a.last_us < prm.inactivity_days * {US_PER_DAY}"
        hit = """MAX(CASE WHEN ch.churn_point = 1 AND ch.day >= p.last_day
                          AND ch.day < p.cutoff_day + prm.horizon_days THEN 1 ELSE 0 END)"""
        lookahead = "prm.horizon_days + prm.inactivity_days"
        points = f""",
    gaps AS (
      SELECT user_id, day, last_us,
             LEAD(first_us) OVER (PARTITION BY user_id ORDER BY day) AS next_us
      FROM churn_days),
    points AS (
      SELECT g.user_id, g.day,
             CASE WHEN COALESCE(g.next_us, prm.data_end_us) - g.last_us
                       >= prm.inactivity_days * {US_PER_DAY} THEN 1 ELSE 0 END AS churn_point
      FROM gaps g CROSS JOIN params prm)"""
    churn_source = "points" if definition.kind == "inactivity" else "churn_days"
    return population, hit, lookahead, points, churn_source


def snapshots_sql(definition: ChurnDefinition) -> str:
    """One row per (user, cutoff) of the population, with every feature and the label.

    Needs tables `daily` (from daily_sql) and `churn_days` (from churn_days_sql).
    """
    sums = ",\n      ".join(_window_sums())
    population, hit, lookahead, points, churn_source = _churn_parts(definition)
    return f"""
    WITH agg AS (
      SELECT c.cutoff_day, d.user_id,
      MIN(d.day) AS first_day,
      MAX(d.day) AS last_day,
      MIN(d.first_us) AS first_us,
      MAX(d.last_us) AS last_us,
      MIN(d.reg_us) AS reg_us,
      ARG_MAX(d.last_level, d.day) AS level,
      ARG_MAX(d.last_location, d.day) AS location,
      ARG_MAX(d.last_agent, d.day) AS agent,
      MAX(d.gender_known) AS gender_known,
      SUM(d.new_artists) AS distinct_artists,
      MAX(CASE WHEN d.upgrades + d.downgrades > 0 THEN d.day END) AS last_change_day,
      {sums}
      FROM cutoffs c JOIN daily d ON d.day < c.cutoff_day
      GROUP BY c.cutoff_day, d.user_id),
    gone AS (
      SELECT user_id, MIN(day) AS cancel_day FROM churn_days WHERE cancels > 0 GROUP BY user_id),
    pop AS (
      SELECT a.* FROM agg a CROSS JOIN params prm LEFT JOIN gone g ON g.user_id = a.user_id
      WHERE {population}
        AND COALESCE(a.reg_us, a.first_us) < a.cutoff_day * {US_PER_DAY}){points},
    labels AS (
      SELECT p.user_id, p.cutoff_day,
        CASE WHEN MAX((p.cutoff_day + {lookahead}) * {US_PER_DAY} - prm.data_end_us) <= 0
             THEN {hit} END AS label
      FROM pop p CROSS JOIN params prm
      LEFT JOIN {churn_source} ch ON ch.user_id = p.user_id
      GROUP BY p.user_id, p.cutoff_day),
    joined AS (
      SELECT p.*, prm.data_start_day AS data_start_day, l.label AS label
      FROM pop p CROSS JOIN params prm
      JOIN labels l ON l.user_id = p.user_id AND l.cutoff_day = p.cutoff_day)
    SELECT user_id, cutoff_day,
      {", ".join(_derived())},
      label
    FROM joined"""
