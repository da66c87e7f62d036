"""The eventsim (Sparkify) catalog: pages, sessions, songs, levels and devices, in 7, 14 and
28-day windows and all history. Every feature's name, SQL, reason phrase and drift flag."""

from __future__ import annotations

from churnwatch.features import phrases as ph
from churnwatch.features.base import (
    CUTOFF_US,
    EXPOSURE_DAYS,
    OBS_ALL,
    Feature,
    Kind,
    count_and_rate,
    double,
    observed,
    wname,
)
from churnwatch.features.base import span as span_of
from churnwatch.labels import US_PER_DAY
from churnwatch.schema import CANCEL_PAGE, CHURN_PAGE

WINDOWS: tuple[int | None, ...] = (7, 14, 28, None)  # None: all history before the cutoff

# feature slug -> (page, noun in reasons). The churn pages are the churn act: never features.
PAGE_NOUNS: dict[str, tuple[str, str]] = {
    "songs": ("NextSong", "songs played"),
    "thumbs_up": ("Thumbs Up", "thumbs up"),
    "thumbs_down": ("Thumbs Down", "thumbs down"),
    "playlist_adds": ("Add to Playlist", "songs added to playlists"),
    "friend_adds": ("Add Friend", "friends added"),
    "adverts": ("Roll Advert", "adverts heard"),
    "home": ("Home", "visits to the home page"),
    "settings": ("Settings", "visits to settings"),
    "save_settings": ("Save Settings", "saves of settings"),
    "help": ("Help", "visits to help"),
    "about": ("About", "visits to about"),
    "errors": ("Error", "errors"),
    "upgrade_views": ("Upgrade", "visits to the upgrade page"),
    "upgrades": ("Submit Upgrade", "upgrades"),
    "downgrade_views": ("Downgrade", "visits to the downgrade page"),
    "downgrades": ("Submit Downgrade", "downgrades"),
    "logouts": ("Logout", "log-outs"),
}
PAGES: dict[str, str] = {slug: page for slug, (page, _) in PAGE_NOUNS.items()}
CHURN_PAGES = (CANCEL_PAGE, CHURN_PAGE)
NEVER_FEATURES = (*CHURN_PAGES, "auth")
# Rates per exposure day: all-history counts over the days since the user could first be seen
# (registration or the start of the log, whichever is later). A user registered before the log
# began, whose first event came late, was quiet for those days; counting from the first event
# would overstate the rate of exactly the least active users.
EXPOSURE_COUNTS: tuple[str, ...] = ("events", "sessions", *PAGES)
_NOUNS = {slug: noun for slug, (_, noun) in PAGE_NOUNS.items()} | {
    "events": "events", "sessions": "sessions", "listen_hours": "hours of music",
}  # fmt: skip


def _window(w: int | None) -> list[Feature]:
    """The features of one window: page counts and rates, activity, sessions, experience."""
    wn = wname(w)
    span = span_of(w)
    obs = observed(w)
    drift = w is not None  # all-history totals grow with tenure
    out: list[Feature] = []

    def add(name: str, desc: str, kind: Kind, family: str, sql: str, phrase: ph.Phrase,
            bounds: tuple[float | None, float | None] | None = None) -> None:  # fmt: skip
        out.append(Feature(name, desc, wn, kind, family, sql, phrase, drift=drift, bounds=bounds))

    def pair(slug: str, desc: str, rate_desc: str, family: str) -> None:
        """A window total of `slug` and its rate per observed day."""
        out.extend(count_and_rate(slug, slug, _NOUNS[slug], desc, rate_desc, family, w,
                                  drift=drift))  # fmt: skip

    for slug, page in PAGES.items():
        pair(slug, f"'{page}' events", f"'{page}' events per observed day", "pages")
    pair("events", "all events", "events per observed day", "activity")
    add(f"listen_hours_{wn}", f"hours of music played {span}", "numeric", "activity",
        f"{double(f'listen_s_{wn}')} / 3600", ph.windowed("listen_hours", _NOUNS["listen_hours"], w, wn, per_day=False), (0, None))  # fmt: skip
    add(f"listen_hours_per_day_{wn}", f"hours of music per observed day {span}", "rate", "activity",
        f"{double(f'listen_s_{wn}')} / 3600 / {obs}", ph.windowed("listen_hours", _NOUNS["listen_hours"], w, wn, per_day=True))  # fmt: skip
    pair("sessions", "sessions (split at midnight)", "sessions per observed day", "sessions")
    add(f"mean_session_minutes_{wn}", f"mean session length, minutes, {span}", "numeric", "sessions",
        f"{double(f'session_us_{wn}')} / 60000000 / NULLIF(sessions_{wn}, 0)",
        ph.in_window(lambda v, when: f"sessions of {ph.count(v, 'minutes')} on average {when}", w), (0, None))  # fmt: skip
    add(f"songs_per_session_{wn}", f"songs per session {span}", "rate", "sessions",
        f"{double(f'songs_{wn}')} / NULLIF(sessions_{wn}, 0)",
        ph.in_window(lambda v, when: f"{ph.count(v, 'songs per session')} {when}", w))  # fmt: skip
    add(f"active_days_{wn}", f"days with at least one event {span}", "count", "activity",
        f"active_days_{wn}", ph.in_window(lambda v, when: f"active on {ph.count(v, 'days')} {when}", w))  # fmt: skip
    add(f"active_share_{wn}", f"share of observed days with an event {span}", "rate", "activity",
        f"{double(f'active_days_{wn}')} / {obs}",
        ph.in_window(lambda v, when: f"active on {v:.0%} of days {when}", w), (0, 1))  # fmt: skip
    add(f"thumbs_down_share_{wn}", f"thumbs down / all thumbs, smoothed (+1/+2), {span}", "rate", "experience",
        f"{double(f'thumbs_down_{wn} + 1')} / {double(f'thumbs_down_{wn} + thumbs_up_{wn} + 2')}",
        ph.in_window(lambda v, when: f"{v:.0%} of thumbs were down {when}", w), (0, 1))  # fmt: skip
    add(f"adverts_per_song_{wn}", f"adverts per song (+1 smoothed) {span}", "rate", "experience",
        f"{double(f'adverts_{wn}')} / {double(f'songs_{wn} + 1')}",
        ph.in_window(lambda v, when: f"{ph.count(v, 'adverts per song')} {when}", w))  # fmt: skip
    out.append(Feature(f"observed_days_{wn}", f"days the user could be observed {span}", wn,
                       "count", "activity", obs,
                       ph.in_window(lambda v, when: f"observed for {ph.count(v, 'days')} {when}", w),
                       drift=False))  # fmt: skip
    return out


def _trend(col: str) -> str:
    """log((rate in the last 7 days + 1) / (rate in the 21 before + 1)); 0 without 8 days."""
    last = f"{double(f'{col}_7d')} / LEAST(7, {OBS_ALL})"
    before = f"{double(f'{col}_28d - {col}_7d')} / (LEAST(28, {OBS_ALL}) - 7)"
    return f"CASE WHEN {OBS_ALL} > 7 THEN LN(({last} + 1) / ({before} + 1)) ELSE 0 END"


_TD_LAST = f"{double('thumbs_down_7d')} / LEAST(7, {OBS_ALL})"
_TD_BEFORE = f"{double('thumbs_down_28d - thumbs_down_7d')} / (LEAST(28, {OBS_ALL}) - 7)"
_OS = """CASE WHEN agent IS NULL THEN 'unknown'
                WHEN agent LIKE '%iPhone%' THEN 'iphone' WHEN agent LIKE '%iPad%' THEN 'ipad'
                WHEN agent LIKE '%Android%' THEN 'android'
                WHEN agent LIKE '%Windows%' THEN 'windows'
                WHEN agent LIKE '%Mac OS X%' OR agent LIKE '%Macintosh%' THEN 'mac'
                WHEN agent LIKE '%Linux%' THEN 'linux' ELSE 'other' END"""
_BROWSER = """CASE WHEN agent IS NULL THEN 'unknown'
                WHEN agent LIKE '%Firefox%' THEN 'firefox' WHEN agent LIKE '%Edge%' THEN 'edge'
                WHEN agent LIKE '%Chrome%' THEN 'chrome'
                WHEN agent LIKE '%Trident%' OR agent LIKE '%MSIE%' THEN 'ie'
                WHEN agent LIKE '%Safari%' THEN 'safari' ELSE 'other' END"""
_STATE = "COALESCE(NULLIF(REGEXP_EXTRACT(location, ', ([A-Z][A-Z])', 1), ''), 'unknown')"

_OTHER: list[Feature] = [
    Feature("distinct_artists", "distinct artists played before the cutoff", "all", "count", "seed",
            "distinct_artists", ph.numeric(lambda v, n: ph.count(v, "distinct artists played")), drift=False, seed=True),
    Feature("artists_per_day_all", "distinct artists played per observed day before the cutoff", "all", "rate", "seed",
            f"{double('distinct_artists')} / {OBS_ALL}", ph.numeric(lambda v, n: f"{n} new {ph.plural(v, 'artist')} a day"), drift=False),
    Feature("mean_song_length", "mean length of songs played, seconds", "all", "numeric", "seed",
            f"{double('listen_s_all')} / NULLIF(songs_all, 0)", ph.numeric(lambda v, n: f"songs average {ph.count(v, 'seconds')}"), drift=False, seed=True, bounds=(0, None)),
    Feature("tenure_days", "days from registration to the cutoff", "at cutoff", "numeric", "seed",
            f"{double(f'{CUTOFF_US} - COALESCE(reg_us, first_us)')} / {US_PER_DAY}",
            ph.numeric(lambda v, n: f"a subscriber for {ph.count(v, 'days')}"), drift=False, seed=True),
    Feature("recency_days", "days from the last event to the cutoff", "at cutoff", "numeric", "seed",
            f"{double(f'{CUTOFF_US} - last_us')} / {US_PER_DAY}", ph.numeric(lambda v, n: f"last active {ph.count(v, 'days')} ago"), seed=True, bounds=(0, None)),
    Feature("is_male", "gender is M (1), else 0", "at cutoff", "numeric", "seed",
            "CASE WHEN gender_known = 'M' THEN 1 ELSE 0 END",
            ph.numeric(lambda v, n: "gender M" if v == 1 else "gender not M"), drift=False, seed=True, bounds=(0, 1)),
    Feature("is_paid", "level at the last event before the cutoff is paid", "at cutoff", "numeric", "seed",
            "CASE WHEN level = 'paid' THEN 1 ELSE 0 END",
            ph.numeric(lambda v, n: "on the paid level" if v == 1 else "on the free level"), seed=True, bounds=(0, 1)),
    Feature("level_changes_all", "upgrades plus downgrades submitted before the cutoff", "all", "count", "level",
            "upgrades_all + downgrades_all", ph.numeric(lambda v, n: ph.count(v, "level changes")), drift=False),
    Feature("days_since_level_change", "days since the last submitted upgrade or downgrade (null: none)", "at cutoff", "numeric", "level",
            "cutoff_day - last_change_day", ph.numeric(lambda v, n: f"last level change {ph.count(v, 'days')} ago"), drift=False, bounds=(0, None)),
    Feature("trend_events", "log of (events/day in the last 7 days + 1) / (events/day in the 21 before + 1)", "28d", "numeric", "trend",
            _trend("events"), ph.log_trend("events")),
    Feature("trend_songs", "log of (songs/day in the last 7 days + 1) / (songs/day in the 21 before + 1)", "28d", "numeric", "trend",
            _trend("songs"), ph.log_trend("songs")),
    Feature("trend_thumbs_down", "thumbs down/day in the last 7 days minus that of the 21 before", "28d", "numeric", "trend",
            f"CASE WHEN {OBS_ALL} > 7 THEN {_TD_LAST} - {_TD_BEFORE} ELSE 0 END",
            ph.numeric(lambda v, n: f"{ph.fmt(abs(v))} {'more' if v >= 0 else 'fewer'} thumbs down a day in the last 7 days than the 21 before")),
    Feature("gender", "gender at the last event (M, F, unknown)", "at cutoff", "category", "profile",
            "COALESCE(gender_known, 'unknown')", ph.category("gender {}")),
    Feature("level", "level at the last event (free, paid)", "at cutoff", "category", "profile",
            "COALESCE(level, 'unknown')", ph.category("on the {} level")),
    Feature("os_family", "operating system from the user agent", "at cutoff", "category", "profile",
            _OS, ph.category("uses {}")),
    Feature("browser_family", "browser from the user agent", "at cutoff", "category", "profile",
            _BROWSER, ph.category("browses with {}")),
    Feature("state", "US state (first of the metro area's) from the location", "at cutoff", "category", "profile",
            _STATE, ph.category("located in {}")),
]  # fmt: skip


def _exposure_rate(slug: str) -> Feature:
    noun = _NOUNS[slug]
    return Feature(
        f"{slug}_per_exposure_day", f"{slug.replace('_', ' ')} per exposure day (all history)",
        "all", "rate", "exposure", f"{double(f'{slug}_all')} / {EXPOSURE_DAYS}",
        ph.numeric(lambda v, n: f"{ph.count(v, noun)} a day since they could first be seen"), drift=False,
    )  # fmt: skip


_EXPOSURE: list[Feature] = [
    Feature("exposure_days", "days since registration or the start of the log, whichever is later, to the cutoff", "all", "count", "exposure",
            EXPOSURE_DAYS, ph.numeric(lambda v, n: f"seen for {ph.count(v, 'days')}"), drift=False),
    *(_exposure_rate(slug) for slug in EXPOSURE_COUNTS),
]  # fmt: skip

SEED_FEATURES = ("songs_all", *(f.name for f in _OTHER if f.seed))


def sparkify_features() -> list[Feature]:
    """Every feature, in the column order of the snapshot table."""
    return [f for w in WINDOWS for f in _window(w)] + _OTHER + _EXPOSURE
