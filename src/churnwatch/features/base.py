"""What every feature catalog is made of: a feature, the spec that picks a catalog for a log,
and the SQL helpers the catalogs' expressions share."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from churnwatch.errors import ConfigError
from churnwatch.features import phrases as ph
from churnwatch.labels import US_PER_DAY

Kind = Literal["count", "rate", "numeric", "category"]


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    window: str  # "7d", "14d", "28d", "all", "at cutoff"
    kind: Kind
    family: str
    sql: str  # expression over the columns of `agg`
    phrase: ph.Phrase | None = None  # the value in words; None: "description: value"
    drift: bool = True  # watched by drift monitoring (False: grows with time by design)
    seed: bool = False  # one of the seed project's seven features
    bounds: tuple[float | None, float | None] | None = None  # None: from the kind (`limits`)

    @property
    def limits(self) -> tuple[float | None, float | None]:
        """The lowest and highest value the feature's SQL can give (None: no limit). Counts
        and rates are never negative unless the feature says otherwise (a rate of a log's
        values, which may be refunds); shares and indicators say (0, 1). A /predict payload
        outside them is refused, as a number no user can have."""
        if self.bounds is not None:
            return self.bounds
        return (0.0, None) if self.kind in ("count", "rate") else (None, None)


@dataclass(frozen=True)
class FeatureSpec:
    """Which catalog a log's features come from.

    `sparkify`: eventsim's pages, sessions, songs, levels and devices (the default).
    `events`: any event log, from what it holds: its event types (`events`, the most frequent
    first), whether it carries a value column, and windows (days) that suit its cadence.
    `value_name` is that column's name in the log (`dollar_value`), for the reasons' words.
    """

    kind: Literal["sparkify", "events"] = "sparkify"
    events: tuple[str, ...] = ()
    value: bool = False
    windows: tuple[int, ...] = (7, 14, 28)
    value_name: str = ""

    @property
    def value_words(self) -> str:
        """The value in words: the log's column name ("dollar value"), else "value"."""
        words = " ".join(self.value_name.rsplit(".", 1)[-1].replace("_", " ").split()).lower()
        return words or "value"

    def __post_init__(self) -> None:
        if self.kind not in ("sparkify", "events"):
            raise ConfigError(f"features have to be 'sparkify' or 'events'. Got {self.kind!r}.")
        if (
            not self.windows
            or any(w < 1 for w in self.windows)
            or len(set(self.windows)) != len(self.windows)
        ):
            raise ConfigError(f"windows have to be distinct days >= 1. Got {self.windows}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FeatureSpec:
        if not data:
            return cls()
        return cls(
            kind=data.get("kind", "sparkify"),
            events=tuple(data.get("events", ())),
            value=bool(data.get("value", False)),
            windows=tuple(int(w) for w in data.get("windows", (7, 14, 28))),
            value_name=str(data.get("value_name", "")),
        )

    def describe(self) -> str:
        if self.kind == "sparkify":
            return "eventsim (Sparkify) features"
        days = ", ".join(f"{w}d" for w in self.windows)
        value = ", a value column" if self.value else ""
        return f"features of {len(self.events)} event type(s){value}, windows {days} and all"


def wname(window: int | None) -> str:
    return f"{window}d" if window else "all"


def span(window: int | None) -> str:
    """A window in words, for descriptions."""
    return (
        f"in the {window} days before the cutoff" if window else "before the cutoff (all history)"
    )


def observed(window: int | None) -> str:
    """SQL: the days of `window` after the user's first event (the rates' denominator)."""
    return f"LEAST({window}, cutoff_day - first_day)" if window else OBS_ALL


def count_and_rate(
    stem: str, column: str, noun: str, desc: str, rate_desc: str, family: str,
    window: int | None, *, drift: bool,
) -> list[Feature]:  # fmt: skip
    """A window's total of `column` (`<stem>_<w>`) and its rate per observed day
    (`<stem>_per_day_<w>`), each set against the user's usual rate in reasons."""
    wn = wname(window)
    return [
        Feature(f"{stem}_{wn}", f"{desc} {span(window)}", wn, "count", family, f"{column}_{wn}",
                ph.windowed(stem, noun, window, wn, per_day=False), drift=drift),
        Feature(f"{stem}_per_day_{wn}", f"{rate_desc} {span(window)}", wn, "rate", family,
                f"{double(f'{column}_{wn}')} / {observed(window)}",
                ph.windowed(stem, noun, window, wn, per_day=True), drift=drift),
    ]  # fmt: skip


def double(expr: str) -> str:
    return f"CAST({expr} AS DOUBLE)"


OBS_ALL = "(cutoff_day - first_day)"
CUTOFF_US = f"cutoff_day * {US_PER_DAY}"
# exposure starts at registration or the log's first day, whichever is later, and never after
# the user's first event
_REG_DAY = f"CAST(FLOOR({double('reg_us')} / {US_PER_DAY}) AS BIGINT)"
EXPOSURE_DAYS = (
    f"(cutoff_day - LEAST(first_day, GREATEST(data_start_day, COALESCE({_REG_DAY}, first_day))))"
)
