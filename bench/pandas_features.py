"""The baseline: churnwatch's snapshot table in plain pandas, the way Sparkify notebooks do it.

It reads the store's Parquet files into one DataFrame, builds the per-user per-day table with
groupby, then for each cutoff filters the days before it and sums the windows. It computes the
same table as the SQL (`churnwatch.features.sql`, eventsim's catalog, the default cancellation
definition): the population, every one of the catalog's features and the label. A test holds
it equal to the DuckDB table, so the benchmark compares the same work. Benchmark only: not part
of churnwatch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnwatch.features.catalog import CHURN_PAGES, EXPOSURE_COUNTS, PAGES, WINDOWS, wname
from churnwatch.labels import US_PER_DAY
from churnwatch.schema import CHURN_PAGE

COLUMNS = ["user_id", "ts", "session_id", "page", "level", "gender", "artist", "length",
           "location", "user_agent", "registration"]  # fmt: skip
SUMMED = [*PAGES, "events", "listen_s", "sessions", "session_us"]
# the SQL's LIKE rules, first match wins
OS_RULES = (("iphone", ("iPhone",)), ("ipad", ("iPad",)), ("android", ("Android",)),
            ("windows", ("Windows",)), ("mac", ("Mac OS X", "Macintosh")),
            ("linux", ("Linux",)))  # fmt: skip
BROWSER_RULES = (("firefox", ("Firefox",)), ("edge", ("Edge",)), ("chrome", ("Chrome",)),
                 ("ie", ("Trident", "MSIE")), ("safari", ("Safari",)))  # fmt: skip


def _us(col: pd.Series) -> pd.Series:
    """Microseconds since the epoch (float: NaN where missing; exact below 2**53 us)."""
    return (col - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(1, "us")


def daily(e: pd.DataFrame) -> pd.DataFrame:
    """Per user and day: page counts, listening, session pieces, new artists, last state."""
    e = e[~e["page"].isin(CHURN_PAGES)]
    # in time order (a tie goes to paid): the day's last state is the last non-missing value
    e = e.assign(paid=e["level"] == "paid").sort_values(["user_id", "ts_us", "paid"])
    song = e["page"] == "NextSong"
    e = e.assign(listen_s=np.where(song, e["length"].fillna(0.0), 0.0),
                 is_m=e["gender"] == "M", is_f=e["gender"] == "F")  # fmt: skip
    keys = ["user_id", "day"]
    g = e.groupby(keys, sort=True)
    agg = g.agg(
        events=("page", "size"),
        listen_s=("listen_s", "sum"),
        first_us=("ts_us", "min"),
        last_us=("ts_us", "max"),
        reg_us=("registration_us", "min"),
        any_m=("is_m", "any"),
        any_f=("is_f", "any"),
        last_level=("level", "last"),
        last_location=("location", "last"),
        last_agent=("user_agent", "last"),
    )
    agg["gender_known"] = np.where(agg["any_m"], "M", np.where(agg["any_f"], "F", None))
    counts = e.groupby([*keys, "page"]).size().unstack("page", fill_value=0)
    pages = counts.reindex(columns=list(PAGES.values()), fill_value=0)
    pages.columns = list(PAGES)
    pieces = e.groupby([*keys, "session_id"])["ts_us"].agg(["min", "max"])
    pieces["dur"] = pieces["max"] - pieces["min"]
    sess = pieces.groupby(level=[0, 1]).agg(sessions=("dur", "size"), session_us=("dur", "sum"))
    played = e[song & e["artist"].notna()]
    first = played.groupby(["user_id", "artist"])["day"].min()
    arts = first.reset_index().groupby(keys).size().rename("new_artists")
    out = pd.concat([agg.drop(columns=["any_m", "any_f"]), pages, sess, arts], axis=1)
    out = out.fillna({"sessions": 0, "session_us": 0, "new_artists": 0})
    return out.reset_index().sort_values(keys, kind="stable")


def _family(agent: pd.Series, rules: tuple[tuple[str, tuple[str, ...]], ...]) -> pd.Series:
    out = pd.Series("other", index=agent.index, dtype=object)
    done = agent.isna()
    out[done] = "unknown"
    for name, needles in rules:
        hit = ~done & agent.fillna("").str.contains("|".join(needles), regex=True)
        out[hit] = name
        done |= hit
    return out


def _ratio(num: pd.Series, den: pd.Series) -> pd.Series:
    """num / den, NULL where den is 0 (the SQL's NULLIF)."""
    return num.astype(float) / den.where(den != 0).astype(float)


def _features(c: int, s: pd.DataFrame, data_start_day: int) -> dict[str, pd.Series]:
    """Every catalog feature of one cutoff's users, from their window sums `s`."""
    obs_all = (c - s["first_day"]).astype(float)
    f: dict[str, pd.Series] = {}
    for w in WINDOWS:
        wn = wname(w)
        obs = obs_all if w is None else np.minimum(float(w), obs_all)
        for slug in [*PAGES, "events"]:
            f[f"{slug}_{wn}"] = s[f"{slug}_{wn}"]
            f[f"{slug}_per_day_{wn}"] = s[f"{slug}_{wn}"] / obs
        f[f"listen_hours_{wn}"] = s[f"listen_s_{wn}"] / 3600
        f[f"listen_hours_per_day_{wn}"] = s[f"listen_s_{wn}"] / 3600 / obs
        f[f"sessions_{wn}"] = s[f"sessions_{wn}"]
        f[f"sessions_per_day_{wn}"] = s[f"sessions_{wn}"] / obs
        f[f"mean_session_minutes_{wn}"] = _ratio(s[f"session_us_{wn}"] / 60_000_000,
                                                 s[f"sessions_{wn}"])  # fmt: skip
        f[f"songs_per_session_{wn}"] = _ratio(s[f"songs_{wn}"], s[f"sessions_{wn}"])
        f[f"active_days_{wn}"] = s[f"active_days_{wn}"]
        f[f"active_share_{wn}"] = s[f"active_days_{wn}"] / obs
        td, tu = s[f"thumbs_down_{wn}"], s[f"thumbs_up_{wn}"]
        f[f"thumbs_down_share_{wn}"] = (td + 1) / (td + tu + 2)
        f[f"adverts_per_song_{wn}"] = s[f"adverts_{wn}"] / (s[f"songs_{wn}"] + 1)
        f[f"observed_days_{wn}"] = obs.astype("int64")
    f["distinct_artists"] = s["distinct_artists"]
    f["artists_per_day_all"] = s["distinct_artists"] / obs_all
    f["mean_song_length"] = _ratio(s["listen_s_all"], s["songs_all"])
    start_us = s["reg_us"].fillna(s["first_us"])
    f["tenure_days"] = (c * US_PER_DAY - start_us) / US_PER_DAY
    f["recency_days"] = (c * US_PER_DAY - s["last_us"]) / US_PER_DAY
    f["is_male"] = (s["gender_known"] == "M").astype(float)
    f["is_paid"] = (s["level"] == "paid").astype(float)
    f["level_changes_all"] = s["upgrades_all"] + s["downgrades_all"]
    f["days_since_level_change"] = c - s["last_change_day"]
    longer = obs_all > 7
    for col in ("events", "songs"):
        last = s[f"{col}_7d"] / np.minimum(7.0, obs_all)
        before = (s[f"{col}_28d"] - s[f"{col}_7d"]) / (np.minimum(28.0, obs_all) - 7)
        f[f"trend_{col}"] = np.where(longer, np.log((last + 1) / (before + 1)), 0.0)
    last = s["thumbs_down_7d"] / np.minimum(7.0, obs_all)
    before = (s["thumbs_down_28d"] - s["thumbs_down_7d"]) / (np.minimum(28.0, obs_all) - 7)
    f["trend_thumbs_down"] = np.where(longer, last - before, 0.0)
    f["gender"] = s["gender_known"].fillna("unknown")
    f["level"] = s["level"].fillna("unknown")
    f["os_family"] = _family(s["agent"], OS_RULES)
    f["browser_family"] = _family(s["agent"], BROWSER_RULES)
    state = s["location"].str.extract(r", ([A-Z][A-Z])", expand=False)
    f["state"] = state.where(state.notna() & (state != ""), "unknown")
    reg_day = np.floor(s["reg_us"] / US_PER_DAY)
    start = np.maximum(data_start_day, reg_day.fillna(s["first_day"]))
    exposure = c - np.minimum(s["first_day"], start)
    f["exposure_days"] = exposure.astype("int64")
    for slug in EXPOSURE_COUNTS:
        f[f"{slug}_per_exposure_day"] = s[f"{slug}_all"] / exposure
    return f


def snapshots(events: pd.DataFrame, cutoffs: list[int], horizon_days: int = 14) -> pd.DataFrame:
    """One row per (user, cutoff) of the population: every feature and the label."""
    e = events[events["user_id"] != ""].copy()
    e["ts_us"] = _us(e["ts"]).astype("int64")
    e["registration_us"] = _us(e["registration"])
    e["day"] = e["ts_us"] // US_PER_DAY
    data_start_day = int(e["ts_us"].min() // US_PER_DAY)
    data_end_us = int(e["ts_us"].max())
    cancels = e.loc[e["page"] == CHURN_PAGE, ["user_id", "day"]]
    gone = cancels.groupby("user_id")["day"].min()
    d = daily(e)
    changed = d["day"].where(d["upgrades"] + d["downgrades"] > 0)
    d["change_day"] = changed
    frames = []
    for c in cutoffs:
        before = d[d["day"] < c]
        g = before.groupby("user_id", sort=True)
        s = pd.DataFrame({
            "first_day": g["day"].min(), "last_us": g["last_us"].max(),
            "first_us": g["first_us"].min(), "reg_us": g["reg_us"].min(),
            "gender_known": g["gender_known"].max(), "distinct_artists": g["new_artists"].sum(),
            "last_change_day": g["change_day"].max(),
        })  # fmt: skip
        state = g[["last_level", "last_location", "last_agent"]].last()  # latest non-missing
        s["level"], s["location"], s["agent"] = (state["last_level"], state["last_location"],
                                                 state["last_agent"])  # fmt: skip
        parts = [s]
        for w in WINDOWS:
            part = before if w is None else before[before["day"] >= c - w]
            sums = part.groupby("user_id")[SUMMED].sum()
            sums["active_days"] = part.groupby("user_id").size()
            parts.append(sums.reindex(s.index, fill_value=0).add_suffix(f"_{wname(w)}"))
        s = pd.concat(parts, axis=1)
        # the population: registered before the cutoff and not cancelled before it
        cancel_day = s.index.map(gone)
        keep = (pd.isna(cancel_day) | (cancel_day >= c)) & (
            s["reg_us"].fillna(s["first_us"]) < c * US_PER_DAY
        )
        s = s[np.asarray(keep, dtype=bool)]
        if (c + horizon_days) * US_PER_DAY <= data_end_us:  # the horizon is in the data
            within = cancels[(cancels["day"] >= c) & (cancels["day"] < c + horizon_days)]
            label = pd.array(s.index.isin(within["user_id"]), dtype="Int8")
        else:
            label = pd.array([pd.NA] * len(s), dtype="Int8")
        columns = {"cutoff_day": np.full(len(s), c), **_features(c, s, data_start_day)}
        snap = pd.DataFrame({**columns, "label": pd.Series(label, index=s.index)}, index=s.index)
        frames.append(snap.rename_axis("user_id").reset_index())
    return pd.concat(frames, ignore_index=True)
