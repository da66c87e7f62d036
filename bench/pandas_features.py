"""The baseline: the same windowed features in plain pandas, the way Sparkify notebooks do it.

It reads the store's Parquet files into one DataFrame, builds the per-user per-day table with
groupby, then for each cutoff filters the days before it and sums the windows. It computes the
windowed families (page counts and per-day rates over 7, 14, 28 days and all history; events,
listening, sessions, active days) and the seed features: the bulk of the work of the SQL
version, without the categorical and trend columns. Benchmark only: not part of churnwatch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from churnwatch.features.catalog import CHURN_PAGES, PAGES, WINDOWS, wname
from churnwatch.labels import US_PER_DAY


def daily(events: pd.DataFrame) -> pd.DataFrame:
    e = events[~events["page"].isin(CHURN_PAGES)].copy()
    e["ts_us"] = (
        e["ts"].astype("int64") // 1000 if e["ts"].dt.unit == "ns" else e["ts"].astype("int64")
    )
    e["day"] = e["ts_us"] // US_PER_DAY
    for slug, page in PAGES.items():
        e[slug] = (e["page"] == page).astype("int64")
    e["listen_s"] = np.where(e["page"] == "NextSong", e["length"].fillna(0.0), 0.0)
    keys = ["user_id", "day"]
    agg = e.groupby(keys).agg(
        events=("page", "size"),
        listen_s=("listen_s", "sum"),
        first_us=("ts_us", "min"),
        last_us=("ts_us", "max"),
        reg=("registration", "min"),
        **{slug: (slug, "sum") for slug in PAGES},
    )
    pieces = e.groupby(["user_id", "day", "session_id"])["ts_us"].agg(["min", "max"])
    pieces["dur"] = pieces["max"] - pieces["min"]
    sess = pieces.groupby(level=[0, 1]).agg(sessions=("dur", "size"), session_us=("dur", "sum"))
    first = e[e["page"] == "NextSong"].groupby(["user_id", "artist"])["day"].min()
    arts = first.reset_index().groupby(["user_id", "day"]).size().rename("new_artists")
    out = agg.join(sess).join(arts).fillna({"new_artists": 0}).reset_index()
    return out


def snapshots(events: pd.DataFrame, cutoffs: list[int]) -> pd.DataFrame:
    d = daily(events)
    frames = []
    cols = [*PAGES, "events", "listen_s", "sessions", "session_us"]
    for c in cutoffs:
        before = d[d["day"] < c]
        g = before.groupby("user_id")
        base = pd.DataFrame(
            {
                "first_day": g["day"].min(),
                "last_us": g["last_us"].max(),
                "distinct_artists": g["new_artists"].sum(),
            }
        )
        out: dict[str, pd.Series] = {}
        for w in WINDOWS:
            part = before if w is None else before[before["day"] >= c - w]
            sums = part.groupby("user_id")[cols].sum()
            sums["active_days"] = part.groupby("user_id").size()
            sums = sums.reindex(base.index, fill_value=0)
            obs = (c - base["first_day"]) if w is None else np.minimum(w, c - base["first_day"])
            for col in [*cols, "active_days"]:
                out[f"{col}_{wname(w)}"] = sums[col]
            for slug in [*PAGES, "events", "sessions"]:
                out[f"{slug}_per_day_{wname(w)}"] = sums[slug] / obs
            out[f"active_share_{wname(w)}"] = sums["active_days"] / obs
        out["mean_song_length"] = out["listen_s_all"] / out["songs_all"].replace(0, np.nan)
        out["recency_days"] = (c * US_PER_DAY - base["last_us"]) / US_PER_DAY
        snap = pd.concat([base, pd.DataFrame(out)], axis=1)
        snap["cutoff_day"] = c
        frames.append(snap.reset_index())
    return pd.concat(frames, ignore_index=True)
