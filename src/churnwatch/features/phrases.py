"""How a feature's value reads in a reason: "9 thumbs down in the last 7 days, 3.0x your usual
rate". The catalog gives every feature one of these phrases; `serving.reasons` only looks them up.

A phrase is called with the value (never missing: the caller words a missing value) and the
user's whole feature row, so that a windowed count can be set against the user's usual rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

Phrase = Callable[[Any, Mapping[str, Any]], str]

_KEEP_PLURAL = ("thumbs",)


def fmt(v: float) -> str:
    """A number as a person writes it: 3, 0.25, 12.5, 1,234; 1.23e+15 from a quadrillion."""
    if abs(v) >= 1e15:  # digits beyond a float's precision say nothing
        return f"{v:.3g}"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:.2f}" if abs(v) < 10 else f"{v:,.1f}"


def count(v: float, noun: str) -> str:
    """'1 visit to help', '3 visits to help': the noun's first word loses its plural at 1;
    after an event's quoted name, the word that follows it ("1 'support' event")."""
    if v != 1:
        return f"{fmt(v)} {noun}"
    name = ""
    if noun.startswith("'") and "' " in noun[1:]:
        end = noun.index("' ", 1) + 2
        name, noun = noun[:end], noun[end:]
    first, _, rest = noun.partition(" ")
    if first.endswith("s") and first not in _KEEP_PLURAL:
        noun = " ".join(x for x in (first[:-1], rest) if x)
    return f"{fmt(v)} {name}{noun}"


def plural(v: float, singular: str) -> str:
    """The word for `v` of a thing: 'artist' at 1, else 'artists'."""
    return singular if v == 1 else singular + "s"


def window_text(window: int | None) -> str:
    return f"in the last {window} days" if window else "in all their history"


def _finite(v: Any) -> float | None:
    return None if v is None or not math.isfinite(float(v)) else float(v)


def _against_usual(text: str, rate: float | None, usual: float | None) -> str:
    if usual and rate is not None and usual > 0:
        ratio = rate / usual
        if ratio < 0.05:
            return text + f", against your usual {fmt(usual)} a day"
        if ratio >= 1.05 or ratio <= 0.95:
            return text + f", {ratio:.1f}x your usual rate"
    return text


def windowed(slug: str, noun: str, window: int | None, wn: str, *, per_day: bool) -> Phrase:
    """A count or per-observed-day rate in a window, set against the all-history rate
    (`{slug}_per_day_all`) unless the window is all history."""

    def phrase(value: Any, row: Mapping[str, Any]) -> str:
        when = window_text(window)
        usual = _finite(row.get(f"{slug}_per_day_all")) if window else None
        if per_day:
            return _against_usual(f"{count(float(value), noun)} a day {when}", float(value), usual)
        rate = row.get(f"{slug}_per_day_{wn}")
        rate = None if rate is None else float(rate)
        rate = rate if rate is not None and math.isfinite(rate) else None
        return _against_usual(f"{count(float(value), noun)} {when}", rate, usual)

    return phrase


def numeric(template: Callable[[float, str], str]) -> Phrase:
    """A number read through `template(value, formatted value)`."""
    return lambda value, row: template(float(value), fmt(float(value)))


def in_window(template: Callable[[float, str], str], window: int | None) -> Phrase:
    """A number in a window: `template(value, "in the last 7 days")`."""
    return lambda value, row: template(float(value), window_text(window))


def category(template: str) -> Phrase:
    """A category's value in a sentence: 'uses {}'."""
    return lambda value, row: template.format(value)


def log_trend(what: str, *, recent: int = 7, before: int = 21) -> Phrase:
    """The log ratio of (rate + 1) in the last `recent` days against the `before` days before
    them, as a change."""

    def phrase(value: Any, row: Mapping[str, Any]) -> str:
        change = (math.exp(float(value)) - 1) * 100
        direction = "up" if change >= 0 else "down"
        return (
            f"{what} {direction} {abs(change):.0f}% in the last {recent} days against the "
            f"{before} before"
        )

    return phrase
