"""Churn definitions, cutoff schedules and censoring.

Time is counted in whole UTC days (`day` = days since 1970-01-01) so that the same SQL runs on
DuckDB and on Spark. A cutoff is midnight UTC at the start of day `c`; features see days `< c`
(that is, events with `ts < cutoff`); the label asks whether the user churns in
`[c, c + horizon)`.

Definitions:
- `cancellation` (default): a `Cancellation Confirmation` event is the churn. With
  `include_downgrade`, a `Submit Downgrade` (paid to free) also counts as churn for the label,
  but only a cancellation removes a user from later populations.
- `inactivity`: a user churns at their last event before a gap of at least
  `inactivity_days` days without events.

Population at cutoff `c`: users registered and seen before `c` and not churned before `c`, as
known at `c` (cancellation: no cancellation before `c`; inactivity: an event within the last
`inactivity_days` days before `c`).

Censoring: a snapshot is labelled only when the whole horizon (and, for inactivity, the
`inactivity_days` after it) lies within the data; otherwise its label is null: it is kept for
scoring and never counted as a negative.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import pandas as pd

from churnwatch.errors import ConfigError, InputError
from churnwatch.schema import CHURN_PAGE, DOWNGRADE_PAGE

Definition = Literal["cancellation", "inactivity"]
US_PER_DAY = 86_400_000_000
EPOCH = date(1970, 1, 1)


@dataclass(frozen=True)
class ChurnDefinition:
    """What counts as churn, and how far ahead the label looks."""

    kind: Definition = "cancellation"
    horizon_days: int = 14
    inactivity_days: int = 30
    include_downgrade: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("cancellation", "inactivity"):
            raise ConfigError(
                f"definition has to be one of 'cancellation', 'inactivity'. Got {self.kind!r}."
            )
        if self.horizon_days < 1 or self.inactivity_days < 1:
            raise ConfigError(
                "horizon and inactivity days have to be >= 1. "
                f"Got horizon={self.horizon_days}, inactivity={self.inactivity_days}."
            )

    @classmethod
    def from_run_params(cls, params: Mapping[str, str]) -> ChurnDefinition:
        """The definition a model was trained with, from its MLflow run parameters (the
        `data_*` fingerprint that `churnwatch.runs` logs)."""
        return cls(
            kind=params.get("data_definition", "cancellation"),  # type: ignore[arg-type]
            horizon_days=int(params.get("data_horizon_days", 14)),
            inactivity_days=int(params.get("inactivity_days", 30)),
            include_downgrade=params.get("data_include_downgrade", "False") == "True",
        )

    @property
    def churn_pages(self) -> tuple[str, ...]:
        """The pages that are a churn under a cancellation definition."""
        return (CHURN_PAGE, DOWNGRADE_PAGE) if self.include_downgrade else (CHURN_PAGE,)

    @property
    def lookahead_days(self) -> int:
        """Days after a cutoff that must be observed for its label to be known."""
        extra = self.inactivity_days if self.kind == "inactivity" else 0
        return self.horizon_days + extra

    @property
    def lookahead_words(self) -> str:
        """What those days are, in words: "horizon", or "14-day horizon and 30 inactivity
        days" for the inactivity definition."""
        if self.kind != "inactivity":
            return "horizon"
        return f"{self.horizon_days}-day horizon and {self.inactivity_days} inactivity days"


@dataclass(frozen=True)
class CutoffSchedule:
    """Every `every_days` days, from the first midnight with `min_history_days` of history;
    or exactly the `explicit` dates."""

    every_days: int = 7
    min_history_days: int = 14
    explicit: tuple[date, ...] = ()

    def __post_init__(self) -> None:
        if self.every_days < 1 or self.min_history_days < 0:
            raise ConfigError(
                "every has to be >= 1 and min history >= 0. "
                f"Got every={self.every_days}, min history={self.min_history_days}."
            )

    def days(self, first_event: datetime, last_event: datetime) -> list[int]:
        """Cutoff days (days since epoch) for data spanning [first_event, last_event]."""
        if self.explicit:
            return sorted({day_number(d) for d in self.explicit})
        start = day_number(first_event.date()) + max(self.min_history_days, 1)
        end = day_number(last_event.date())
        return list(range(start, end + 1, self.every_days))

    def first_on_or_after(self, first_event: datetime, day: date) -> date | None:
        """The first cutoff on or after `day` of this schedule, for data from `first_event`
        on (None: an explicit schedule with none from `day` on)."""
        if self.explicit:
            return min((d for d in self.explicit if d >= day), default=None)
        start = first_event.date() + timedelta(days=max(self.min_history_days, 1))
        steps = max(-(-(day - start).days // self.every_days), 0)
        return start + timedelta(days=steps * self.every_days)


def unlearnable(
    cutoffs: pd.Series,
    labels: pd.Series,
    definition: ChurnDefinition,
    data_end: datetime,
    holds_page: Callable[..., bool] | None = None,
) -> str | None:
    """Why snapshots at `cutoffs` with `labels` (null: censored) cannot train or score a
    model, in words that say what is missing; None when they have churners and non-churners.
    `holds_page(*pages)` says whether the data hold any of the pages (asked only when every
    label is 0 under the cancellation definition: a log with no cancellation page at all).
    """
    known = labels.notna()
    kinds = set(labels[known].astype(int).tolist())
    if kinds == {0, 1}:
        return None
    ahead = definition.lookahead_days
    after = f"the {definition.lookahead_words}"
    if not known.any():
        first = pd.Timestamp(cutoffs.min()).date() if len(cutoffs) else None
        where = (f"; the first cutoff is {first}, so the data has to reach "
                 f"{first + pd.Timedelta(days=ahead)}" if first else "")  # fmt: skip
        return (
            "expected labelled snapshots with churners and non-churners. Got none labelled: a "
            f"cutoff is labelled once the {ahead} days after it ({after}) are in the data, "
            f"which ends {pd.Timestamp(data_end).date()}{where}. Give a longer log or a "
            "shorter --horizon"
            + (" or --inactivity-days" if definition.kind == "inactivity" else "")
        )
    dates = pd.to_datetime(cutoffs[known])
    period = f"{dates.min().date()}..{dates.max().date()}"
    what = "churners" if kinds == {1} else "non-churners"
    pages = definition.churn_pages
    no_churn_page = (
        what == "non-churners"
        and definition.kind == "cancellation"
        and holds_page is not None
        and not holds_page(*pages)
    )
    if no_churn_page:
        named = " or ".join(f"'{p}'" for p in pages)
        return (
            f"expected churners and non-churners among the labelled snapshots. Got "
            f"{int(known.sum())} labelled rows, all non-churners: the data hold no {named} "
            "event, the churn of the cancellation definition. A log without cancellations "
            "churns by going quiet: train with --definition inactivity --inactivity-days N "
            '(README, "Your own log")'
        )
    return (
        f"expected churners and non-churners among the labelled snapshots. Got {int(known.sum())} "
        f"labelled rows (cutoffs {period}), all {what}. Give a log with more users, or more "
        "days past the cutoffs"
    )


def day_number(d: date) -> int:
    """Days since 1970-01-01."""
    return (d - EPOCH).days


def cutoff_for(last_event: datetime, as_of: datetime | None) -> tuple[datetime, datetime | None]:
    """The cutoff (a midnight) and the event-time limit for scoring now or as of a time.

    Both use complete days only, as training did (a part-day would shorten every window and
    read as drift). Now: the midnight that starts the last event's day. As of T: the midnight
    at or before T, with events from that midnight on ignored (T's own part-day included).
    """
    if as_of is None:
        return pd.Timestamp(last_event).floor("D").to_pydatetime(), None
    as_of = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    cutoff = pd.Timestamp(as_of).floor("D").to_pydatetime()
    return cutoff, cutoff


def require_population(
    cutoff: datetime, last_event: datetime, definition: ChurnDefinition, users: int | None = None
) -> None:
    """Raise an InputError when no user can be in the population at `cutoff` (as of a time
    long after the data end, under an inactivity definition), or when `users` (a count
    already made) is 0: scoring, planning and monitoring then have no one to score."""
    quiet = definition.kind == "inactivity" and (
        cutoff - last_event >= timedelta(days=definition.inactivity_days)
    )
    if not quiet and users != 0:
        return
    why = (
        f", {(cutoff - last_event).days} days before it: every user has gone quiet for "
        f"{definition.inactivity_days} days by then, which is churn by the model's definition"
        if quiet
        else ""
    )
    hint = " Pick a time within the data." if cutoff > last_event else ""
    raise InputError(
        f"expected active users at the cutoff {cutoff:%Y-%m-%d}. Got none: the store's last "
        f"event is on {last_event:%Y-%m-%d}{why}.{hint}"
    )
