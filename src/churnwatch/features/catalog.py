"""The feature catalog: every feature's name, description, window and type, in one place.

The SQL in `churnwatch.features.sql` is generated from this catalog, `churnwatch features
--list` prints it and `docs/features.md` is written from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["count", "rate", "numeric", "category"]
WINDOWS: tuple[int | None, ...] = (7, 14, 28, None)  # None: all history before the cutoff

# feature slug -> page. Cancel and Cancellation Confirmation are the churn act: never features.
PAGES: dict[str, str] = {
    "songs": "NextSong",
    "thumbs_up": "Thumbs Up",
    "thumbs_down": "Thumbs Down",
    "playlist_adds": "Add to Playlist",
    "friend_adds": "Add Friend",
    "adverts": "Roll Advert",
    "home": "Home",
    "settings": "Settings",
    "save_settings": "Save Settings",
    "help": "Help",
    "about": "About",
    "errors": "Error",
    "upgrade_views": "Upgrade",
    "upgrades": "Submit Upgrade",
    "downgrade_views": "Downgrade",
    "downgrades": "Submit Downgrade",
    "logouts": "Logout",
}
CHURN_PAGES = ("Cancel", "Cancellation Confirmation")
NEVER_FEATURES = (*CHURN_PAGES, "auth")


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    window: str  # "7d", "14d", "28d", "all", "at cutoff"
    kind: Kind
    family: str
    seed: bool = False  # one of the seed project's seven features


def wname(window: int | None) -> str:
    return f"{window}d" if window else "all"


def _windowed() -> list[Feature]:
    out: list[Feature] = []
    for w in WINDOWS:
        span = f"in the {w} days before the cutoff" if w else "before the cutoff (all history)"
        wn = wname(w)
        for slug, page in PAGES.items():
            out.append(Feature(f"{slug}_{wn}", f"'{page}' events {span}", wn, "count", "pages"))
            out.append(
                Feature(
                    f"{slug}_per_day_{wn}",
                    f"'{page}' events per observed day {span}",
                    wn,
                    "rate",
                    "pages",
                )
            )
        out += [
            Feature(f"events_{wn}", f"all events {span}", wn, "count", "activity"),
            Feature(f"events_per_day_{wn}", f"events per observed day {span}", wn, "rate", "activity"),
            Feature(f"listen_hours_{wn}", f"hours of music played {span}", wn, "numeric", "activity"),
            Feature(f"listen_hours_per_day_{wn}", f"hours of music per observed day {span}", wn, "rate", "activity"),
            Feature(f"sessions_{wn}", f"sessions (split at midnight) {span}", wn, "count", "sessions"),
            Feature(f"sessions_per_day_{wn}", f"sessions per observed day {span}", wn, "rate", "sessions"),
            Feature(f"mean_session_minutes_{wn}", f"mean session length, minutes, {span}", wn, "numeric", "sessions"),
            Feature(f"songs_per_session_{wn}", f"songs per session {span}", wn, "rate", "sessions"),
            Feature(f"active_days_{wn}", f"days with at least one event {span}", wn, "count", "activity"),
            Feature(f"active_share_{wn}", f"share of observed days with an event {span}", wn, "rate", "activity"),
            Feature(f"thumbs_down_share_{wn}", f"thumbs down / all thumbs, smoothed (+1/+2), {span}", wn, "rate", "experience"),
            Feature(f"adverts_per_song_{wn}", f"adverts per song (+1 smoothed) {span}", wn, "rate", "experience"),
            Feature(f"observed_days_{wn}", f"days the user could be observed {span}", wn, "count", "activity"),
        ]  # fmt: skip
    return out


_OTHER: list[Feature] = [
    Feature("distinct_artists", "distinct artists played before the cutoff", "all", "count", "seed", True),
    Feature("artists_per_day_all", "distinct artists played per observed day before the cutoff", "all", "rate", "seed"),
    Feature("mean_song_length", "mean length of songs played, seconds", "all", "numeric", "seed", True),
    Feature("tenure_days", "days from registration to the cutoff", "at cutoff", "numeric", "seed", True),
    Feature("recency_days", "days from the last event to the cutoff", "at cutoff", "numeric", "seed", True),
    Feature("is_male", "gender is M (1), else 0", "at cutoff", "numeric", "seed", True),
    Feature("is_paid", "level at the last event before the cutoff is paid", "at cutoff", "numeric", "seed", True),
    Feature("level_changes_all", "upgrades plus downgrades submitted before the cutoff", "all", "count", "level"),
    Feature("days_since_level_change", "days since the last submitted upgrade or downgrade (null: none)", "at cutoff", "numeric", "level"),
    Feature("trend_events", "log of (events/day in the last 7 days + 1) / (events/day in the 21 before + 1)", "28d", "numeric", "trend"),
    Feature("trend_songs", "log of (songs/day in the last 7 days + 1) / (songs/day in the 21 before + 1)", "28d", "numeric", "trend"),
    Feature("trend_thumbs_down", "thumbs down/day in the last 7 days minus that of the 21 before", "28d", "numeric", "trend"),
    Feature("gender", "gender at the last event (M, F, unknown)", "at cutoff", "category", "profile"),
    Feature("level", "level at the last event (free, paid)", "at cutoff", "category", "profile"),
    Feature("os_family", "operating system from the user agent", "at cutoff", "category", "profile"),
    Feature("browser_family", "browser from the user agent", "at cutoff", "category", "profile"),
    Feature("state", "US state (first of the metro area's) from the location", "at cutoff", "category", "profile"),
]  # fmt: skip

# Rates per exposure day: all-history counts over the days since the user could first be seen
# (registration or the start of the log, whichever is later). A user registered before the log
# began, whose first event came late, was quiet for those days; counting from the first event
# would overstate the rate of exactly the least active users.
EXPOSURE_COUNTS: tuple[str, ...] = ("events", "sessions", *PAGES)
_EXPOSURE: list[Feature] = [
    Feature("exposure_days", "days since registration or the start of the log, whichever is later, to the cutoff", "all", "count", "exposure"),
    *(
        Feature(f"{c}_per_exposure_day", f"{c.replace('_', ' ')} per exposure day (all history)", "all", "rate", "exposure")
        for c in EXPOSURE_COUNTS
    ),
]  # fmt: skip

SEED_FEATURES = ("songs_all", *(f.name for f in _OTHER if f.seed))


def catalog() -> list[Feature]:
    """Every feature, in the column order of the snapshot table."""
    feats = _windowed() + _OTHER + _EXPOSURE
    return [
        Feature(f.name, f.description, f.window, f.kind, f.family, f.name in SEED_FEATURES)
        for f in feats
    ]


def feature_names(*, kinds: tuple[Kind, ...] | None = None) -> list[str]:
    return [f.name for f in catalog() if kinds is None or f.kind in kinds]


def markdown() -> str:
    """The catalog as a Markdown page (docs/features.md)."""
    rows = [
        "# Features",
        "",
        "Generated by `churnwatch features --list --markdown`; do not edit by hand.",
        "",
        "Every feature at a cutoff is computed from events strictly before the cutoff. Rates are",
        "per observed day: the days in the window after the user's first event. Sessions are",
        "split at midnight UTC so that no session reaches past a cutoff. Never features: "
        + ", ".join(f"`{p}`" for p in NEVER_FEATURES)
        + ".",
        "",
        f"{len(catalog())} features; the seed project's seven are marked with *.",
        "",
        "| name | window | type | family | description |",
        "|---|---|---|---|---|",
    ]
    for f in catalog():
        star = " *" if f.seed else ""
        rows.append(f"| `{f.name}`{star} | {f.window} | {f.kind} | {f.family} | {f.description} |")
    return "\n".join(rows) + "\n"
