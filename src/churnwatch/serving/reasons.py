"""SHAP contributions in plain words: "9 thumbs down in the last 7 days, 3.0x your usual rate".

Each feature of the catalog is described from its name: the page or measure, the window and
the value; for a windowed page count or rate, the user's all-history rate gives "your usual".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

from churnwatch.features.catalog import PAGES, WINDOWS, catalog, wname

NOUNS: dict[str, str] = {
    "songs": "songs played",
    "thumbs_up": "thumbs up",
    "thumbs_down": "thumbs down",
    "playlist_adds": "songs added to playlists",
    "friend_adds": "friends added",
    "adverts": "adverts heard",
    "home": "visits to the home page",
    "settings": "visits to settings",
    "save_settings": "settings saved",
    "help": "visits to help",
    "about": "visits to about",
    "errors": "errors",
    "upgrade_views": "visits to the upgrade page",
    "upgrades": "upgrades",
    "downgrade_views": "visits to the downgrade page",
    "downgrades": "downgrades",
    "logouts": "log-outs",
    "events": "events",
    "sessions": "sessions",
    "listen_hours": "hours of music",
}
assert set(PAGES) <= set(NOUNS)
_WINDOW_TEXT = {
    wname(w): (f"in the last {w} days" if w else "in all their history") for w in WINDOWS
}
_DESCRIPTIONS = {f.name: f.description for f in catalog()}
STEMS = {
    "active_days": lambda v, when: f"active on {_fmt(v)} days {when}",
    "active_share": lambda v, when: f"active on {v:.0%} of days {when}",
    "mean_session_minutes": lambda v, when: f"sessions of {_fmt(v)} minutes on average {when}",
    "songs_per_session": lambda v, when: f"{_fmt(v)} songs per session {when}",
    "thumbs_down_share": lambda v, when: f"{v:.0%} of thumbs were down {when}",
    "adverts_per_song": lambda v, when: f"{_fmt(v)} adverts per song {when}",
    "observed_days": lambda v, when: f"observed for {_fmt(v)} days {when}",
}


def _fmt(v: float) -> str:
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:,.1f}"


def _split(name: str) -> tuple[str, str, str] | None:
    """'thumbs_down_per_day_7d' -> ('thumbs_down', 'per_day', '7d'); None if not windowed."""
    for w in _WINDOW_TEXT:
        if name.endswith("_" + w):
            stem = name[: -len(w) - 1]
            if stem.endswith("_per_day"):
                return stem[: -len("_per_day")], "per_day", w
            return stem, "count", w
    return None


_KEEP_PLURAL = ("thumbs", "settings")


def _count(v: float, noun: str) -> str:
    """'1 visit to help', '3 visits to help': the noun's first word loses its plural at 1."""
    first, _, rest = noun.partition(" ")
    if v == 1 and first.endswith("s") and first not in _KEEP_PLURAL:
        noun = " ".join(x for x in (first[:-1], rest) if x)
    return f"{_fmt(v)} {noun}"


def _usual(slug: str, row: Mapping[str, Any]) -> float | None:
    v = row.get(f"{slug}_per_day_all")
    return None if v is None or not math.isfinite(float(v)) else float(v)


def describe(name: str, value: Any, row: Mapping[str, Any]) -> str:
    """One feature's value, in words, for the user whose features are `row`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"{_DESCRIPTIONS.get(name, name)}: not known, taken as typical"
    parts = _split(name)
    if parts and parts[0] in STEMS and not isinstance(value, str):
        stem, _, w = parts
        return STEMS[stem](float(value), _WINDOW_TEXT[w])
    if parts and parts[0] in NOUNS:
        slug, kind, w = parts
        when = _WINDOW_TEXT[w]
        noun = NOUNS[slug]
        usual = _usual(slug, row) if w != "all" else None
        rate = float(value) if kind == "per_day" else None
        if kind == "count":
            text = f"{_count(float(value), noun)} {when}"
            rate_w = row.get(f"{slug}_per_day_{w}")
            rate = None if rate_w is None else float(rate_w)
        else:
            text = f"{_fmt(float(value))} {noun} a day {when}"
        if usual and rate is not None and math.isfinite(rate) and usual > 0:
            ratio = rate / usual
            if ratio < 0.05:
                text += f", against your usual {_fmt(usual)} a day"
            elif ratio >= 1.05 or ratio <= 0.95:
                text += f", {ratio:.1f}x your usual rate"
        return text
    if name.endswith("_per_exposure_day") and name.removesuffix("_per_exposure_day") in NOUNS:
        noun = NOUNS[name.removesuffix("_per_exposure_day")]
        return f"{_fmt(float(value))} {noun} a day since they could first be seen"
    if isinstance(value, str):
        words = {"level": f"on the {value} level", "gender": f"gender {value}",
                 "os_family": f"uses {value}", "browser_family": f"browses with {value}",
                 "state": f"located in {value}"}  # fmt: skip
        return words.get(name, f"{_DESCRIPTIONS.get(name, name)}: {value}")
    v = float(value)
    numbers = _numbers(v)
    if name in numbers:
        return numbers[name]
    if name.startswith("trend_"):
        what = name.removeprefix("trend_").replace("_", " ")
        change = (math.exp(v) - 1) * 100  # log ratio of (rate + 1)
        direction = "up" if change >= 0 else "down"
        return f"{what} {direction} {abs(change):.0f}% in the last 7 days against the 21 before"
    return f"{_DESCRIPTIONS.get(name, name)}: {_fmt(v)}"


def _numbers(v: float) -> dict[str, str]:
    """The phrase for each single-number feature, for value `v`."""
    n = _fmt(v)
    return {
        "recency_days": f"last active {n} days ago",
        "tenure_days": f"a subscriber for {n} days",
        "is_paid": "on the paid level" if v == 1 else "on the free level",
        "is_male": "gender M" if v == 1 else "gender not M",
        "distinct_artists": _count(v, "distinct artists played"),
        "artists_per_day_all": f"{n} new artists a day",
        "exposure_days": f"seen for {n} days",
        "mean_song_length": f"songs average {n} seconds",
        "level_changes_all": f"{n} level change" + ("" if v == 1 else "s"),
        "days_since_level_change": f"last level change {n} days ago",
        "trend_thumbs_down": (
            f"{_fmt(abs(v))} {'more' if v >= 0 else 'fewer'} thumbs down a day in the last 7 days"
            " than the 21 before"
        ),
    }


def top_reasons(
    features: Sequence[str],
    row: Mapping[str, Any],
    contributions: np.ndarray,
    *,
    k: int = 5,
    allowed: Collection[str] | None = None,
) -> list[dict[str, Any]]:
    """The k features that raise this user's risk most, largest first; when fewer than k
    raise it, the ones that lower it most follow. Only `allowed` features (default: all) are
    given: the model's features whose effect was stable across the backtest."""
    ok = set(features if allowed is None else allowed)
    keep = [j for j in range(len(features)) if features[j] in ok]
    up = [j for j in sorted(keep, key=lambda j: -contributions[j]) if contributions[j] > 0]
    down = [j for j in sorted(keep, key=lambda j: contributions[j]) if contributions[j] < 0]
    out = []
    for j in (up + down)[:k]:
        c = float(contributions[j])
        name = features[j]
        value = row.get(name)
        if isinstance(value, float) and math.isnan(value):
            value = None
        out.append(
            {
                "feature": name,
                "value": value if not isinstance(value, np.generic) else value.item(),
                "contribution": c,
                "direction": "raises risk" if c > 0 else "lowers risk",
                "text": describe(name, value, row),
            }
        )
    return out
