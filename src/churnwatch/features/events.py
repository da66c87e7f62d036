"""The catalog of any event log, built from what the log holds: for each window (days that
suit the log's cadence, and all history) counts and rates of every event and of each event
type, value sums and means, active days; and recency, tenure, the usual gap between active
days and the last gap against it, a trend, and rates per exposure day.

Every expression reads the columns of `agg` that `features.sql` builds for an `events` spec:
`events_<w>`, `t<i>_<w>` (the i-th event type), `value_sum_<w>`, `value_n_<w>`,
`active_days_<w>`, and the per-user state (first and last day and time, registration).
"""

from __future__ import annotations

import re

from churnwatch.features import phrases as ph
from churnwatch.features.base import (
    CUTOFF_US,
    EXPOSURE_DAYS,
    OBS_ALL,
    Feature,
    FeatureSpec,
    count_and_rate,
    double,
    observed,
    wname,
)
from churnwatch.features.base import span as span_of
from churnwatch.labels import US_PER_DAY


def slug(name: str) -> str:
    """An event type as part of a column name: 'Add to Cart' -> 'add_to_cart'."""
    text = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    return text[:40] or "event"


def type_columns(spec: FeatureSpec) -> dict[str, str]:
    """Event type -> its feature stem (unique, readable): `purchase`, `add_to_cart`."""
    out: dict[str, str] = {}
    for name in spec.events:
        stem, n = slug(name), 2
        while stem in out.values() or stem in ("events", "value", "active", "observed"):
            stem, n = f"{slug(name)}_{n}", n + 1
        out[name] = stem
    return out


def _window(spec: FeatureSpec, w: int | None) -> list[Feature]:
    wn = wname(w)
    span = span_of(w)
    obs = observed(w)
    drift = w is not None  # all-history totals grow with tenure
    out: list[Feature] = []

    def add(name: str, desc: str, kind: str, family: str, sql: str, phrase: ph.Phrase,
            bounds: tuple[float | None, float | None] | None = None) -> None:  # fmt: skip
        out.append(Feature(name, desc, wn, kind, family, sql, phrase, drift=drift,  # type: ignore[arg-type]
                           bounds=bounds))  # fmt: skip

    def pair(stem: str, column: str, noun: str, desc: str, family: str) -> None:
        out.extend(count_and_rate(stem, column, noun, desc, f"{desc} per observed day", family,
                                  w, drift=drift))  # fmt: skip

    pair("events", "events", "events", "all events", "activity")
    if len(spec.events) > 1:  # with one type, its counts are the events'
        for i, (name, stem) in enumerate(type_columns(spec).items()):
            pair(stem, f"t{i}", f"'{name}' events", f"'{name}' events", "events")
    if spec.value:
        total = "values" if spec.value_words == "value" else spec.value_words
        add(
            f"value_sum_{wn}",
            f"sum of the events' values {span}",
            "numeric",
            "value",
            f"COALESCE(value_sum_{wn}, 0)",
            ph.in_window(lambda v, when: f"{total} summing to {ph.fmt(v)} {when}", w),
        )
        add(f"value_mean_{wn}", f"mean value of an event {span}", "numeric", "value",
            f"value_sum_{wn} / NULLIF(value_n_{wn}, 0)",
            ph.in_window(lambda v, when: f"{spec.value_words} of {ph.fmt(v)} an event on "
                         f"average {when}", w))  # fmt: skip
    add(
        f"active_days_{wn}",
        f"days with at least one event {span}",
        "count",
        "activity",
        f"active_days_{wn}",
        ph.in_window(lambda v, when: f"active on {ph.count(v, 'days')} {when}", w),
    )
    add(f"active_share_{wn}", f"share of observed days with an event {span}", "rate", "activity",
        f"{double(f'active_days_{wn}')} / {obs}",
        ph.in_window(lambda v, when: f"active on {v:.0%} of days {when}", w), (0, 1))  # fmt: skip
    out.append(Feature(f"observed_days_{wn}", f"days the user could be observed {span}", wn,
                       "count", "activity", obs,
                       ph.in_window(lambda v, when: f"observed for {ph.count(v, 'days')} {when}", w),
                       drift=False))  # fmt: skip
    return out


def _history(spec: FeatureSpec) -> list[Feature]:
    """Recency, tenure, gaps between active days, a trend, and rates per exposure day."""
    short, long = f"{spec.windows[0]}d", f"{spec.windows[-1]}d"
    w0, w1 = spec.windows[0], spec.windows[-1]
    last = f"{double(f'events_{short}')} / LEAST({w0}, {OBS_ALL})"
    before = (
        f"{double(f'events_{long} - events_{short}')} / NULLIF(LEAST({w1}, {OBS_ALL}) - {w0}, 0)"
    )
    gap = f"{double('last_day - first_day')} / NULLIF(active_days_all - 1, 0)"
    recency = f"{double(f'{CUTOFF_US} - last_us')} / {US_PER_DAY}"
    out = [
        Feature("recency_days", "days from the last event to the cutoff", "at cutoff", "numeric",
                "history", recency, ph.numeric(lambda v, n: f"last active {ph.count(v, 'days')} ago"),
                bounds=(0, None)),
        Feature("tenure_days", "days from registration (or the first event) to the cutoff",
                "at cutoff", "numeric", "history",
                f"{double(f'{CUTOFF_US} - COALESCE(reg_us, first_us)')} / {US_PER_DAY}",
                ph.numeric(lambda v, n: f"a customer for {ph.count(v, 'days')}"), drift=False),
        Feature("mean_gap_days", "mean days between active days (null: one active day)",
                "all", "numeric", "history", gap,
                ph.numeric(lambda v, n: f"usually {ph.count(v, 'days')} between visits"), drift=False,
                bounds=(0, None)),
        Feature("gap_ratio", "days since the last event over the usual gap (null: one active day)",
                "at cutoff", "rate", "history", f"{recency} / NULLIF({gap}, 0)",
                ph.numeric(lambda v, n: f"quiet for {n}x their usual gap")),
        Feature("trend_events",
                f"log of (events/day in the last {w0} days + 1) / (events/day in the "
                f"{w1 - w0} before + 1)", long, "numeric", "trend",
                f"CASE WHEN {OBS_ALL} > {w0} THEN LN(({last} + 1) / (COALESCE({before}, 0) + 1)) ELSE 0 END",
                ph.log_trend("events", recent=w0, before=w1 - w0)),
        Feature("exposure_days", "days since registration or the start of the log, whichever is later, to the cutoff",
                "all", "count", "exposure", EXPOSURE_DAYS, ph.numeric(lambda v, n: f"seen for {ph.count(v, 'days')}"), drift=False),
        Feature("events_per_exposure_day", "events per exposure day (all history)", "all", "rate", "exposure",
                f"{double('events_all')} / {EXPOSURE_DAYS}",
                ph.numeric(lambda v, n: f"{ph.count(v, 'events')} a day since they could first be seen"), drift=False),
    ]  # fmt: skip
    if spec.value:
        out.append(Feature(
            "value_per_exposure_day", "sum of values per exposure day (all history)", "all", "rate",
            "exposure", f"COALESCE({double('value_sum_all')}, 0) / {EXPOSURE_DAYS}",
            ph.numeric(
                lambda v, n: f"{spec.value_words} of {n} a day since they could first be seen"
            ),
            drift=False, bounds=(None, None),  # values may be negative (refunds)
        ))  # fmt: skip
    return out


def event_features(spec: FeatureSpec) -> list[Feature]:
    """Every feature of an `events` spec, in the column order of the snapshot table."""
    windows: list[int | None] = [*spec.windows, None]
    return [f for w in windows for f in _window(spec, w)] + _history(spec)
