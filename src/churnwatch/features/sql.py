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

from churnwatch.db import literal
from churnwatch.features.catalog import (
    CHURN_PAGES,
    PAGES,
    WINDOWS,
    FeatureSpec,
    catalog,
    type_columns,
    wname,
)
from churnwatch.labels import US_PER_DAY, ChurnDefinition
from churnwatch.schema import CHURN_PAGE, DOWNGRADE_PAGE

_CHURN = ", ".join(literal(p) for p in CHURN_PAGES)


def daily_sql(spec: FeatureSpec | None = None) -> str:
    """Per user and day: page counts, listening, session pieces, new artists, last state
    (eventsim); event counts by type and value sums (any other log).

    Churn pages are left out: they are the churn act, never a feature.
    """
    if spec is not None and spec.kind == "events":
        return _events_daily_sql(spec)
    pages = ",\n      ".join(
        f"SUM(CASE WHEN page = {literal(page)} THEN 1 ELSE 0 END) AS {slug}"
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


def _events_daily_sql(spec: FeatureSpec) -> str:
    types = "".join(
        f",\n      SUM(CASE WHEN page = {literal(name)} THEN 1 ELSE 0 END) AS t{i}"
        for i, name in enumerate(type_columns(spec))
    )
    value = ",\n      SUM(value) AS value_sum, COUNT(value) AS value_n" if spec.value else ""
    return f"""
    SELECT user_id, day, COUNT(*) AS events{types}{value},
      MIN(ts_us) AS first_us, MAX(ts_us) AS last_us, MIN(registration_us) AS reg_us
    FROM ev WHERE page NOT IN ({_CHURN}) GROUP BY user_id, day"""


def churn_days_sql(definition: ChurnDefinition) -> str:
    """Per user and day: cancellations, label events, first and last event (all pages)."""
    label_pages = [CHURN_PAGE, DOWNGRADE_PAGE] if definition.include_downgrade else [CHURN_PAGE]
    labels = ", ".join(literal(p) for p in label_pages)
    return f"""
    SELECT user_id, day,
      SUM(CASE WHEN page = {literal(CHURN_PAGE)} THEN 1 ELSE 0 END) AS cancels,
      SUM(CASE WHEN page IN ({labels}) THEN 1 ELSE 0 END) AS label_events,
      MIN(ts_us) AS first_us,
      MAX(ts_us) AS last_us
    FROM ev GROUP BY user_id, day"""


def _window_sums(spec: FeatureSpec) -> list[str]:
    """SUMs over the daily table for every windowed count."""
    if spec.kind == "events":
        windows: tuple[int | None, ...] = (*spec.windows, None)
        cols = ["events", *(f"t{i}" for i in range(len(spec.events)))]
        cols += ["value_sum", "value_n"] if spec.value else []
    else:
        windows, cols = WINDOWS, [*PAGES, "events", "listen_s", "sessions", "session_us"]
    out: list[str] = []
    for w in windows:
        wn = wname(w)
        cond = f"d.day >= c.cutoff_day - {w}" if w else None
        for col in cols:
            expr = f"CASE WHEN {cond} THEN d.{col} ELSE 0 END" if cond else f"d.{col}"
            out.append(f"SUM({expr}) AS {col}_{wn}")
        active = f"CASE WHEN {cond} THEN 1 ELSE 0 END" if cond else "1"
        out.append(f"SUM({active}) AS active_days_{wn}")
    return out


def _derived(spec: FeatureSpec) -> list[str]:
    """Every catalog feature, in catalog order, from the aggregated columns of `agg`."""
    return [f"{f.sql} AS {f.name}" for f in catalog(spec)]


# per user and cutoff: the state at the cutoff that eventsim's features read
_SPARKIFY_STATE = """
      ARG_MAX(d.last_level, d.day) AS level,
      ARG_MAX(d.last_location, d.day) AS location,
      ARG_MAX(d.last_agent, d.day) AS agent,
      MAX(d.gender_known) AS gender_known,
      SUM(d.new_artists) AS distinct_artists,
      MAX(CASE WHEN d.upgrades + d.downgrades > 0 THEN d.day END) AS last_change_day,"""


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


def snapshots_sql(definition: ChurnDefinition, spec: FeatureSpec | None = None) -> str:
    """One row per (user, cutoff) of the population, with every feature and the label.

    Needs tables `daily` (from daily_sql) and `churn_days` (from churn_days_sql).
    """
    spec = spec or FeatureSpec()
    sums = ",\n      ".join(_window_sums(spec))
    state = _SPARKIFY_STATE if spec.kind == "sparkify" else ""
    population, hit, lookahead, points, churn_source = _churn_parts(definition)
    return f"""
    WITH agg AS (
      SELECT c.cutoff_day, d.user_id,
      MIN(d.day) AS first_day,
      MAX(d.day) AS last_day,
      MIN(d.first_us) AS first_us,
      MAX(d.last_us) AS last_us,
      MIN(d.reg_us) AS reg_us,{state}
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
      {", ".join(_derived(spec))},
      label
    FROM joined"""
