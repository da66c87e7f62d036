"""The dashboard's retention curves count churn as the served model does: the first
cancellation, or for an inactivity model the last event before the first quiet spell of its
inactivity days (a spell that runs to the end of the data included), on a hand-made log."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnwatch.config import Settings
from churnwatch.ingest.store import EventStore
from churnwatch.labels import ChurnDefinition
from churnwatch.serving.routes.dashboard import _curve, churn_words, lifetimes
from tests.features.helpers import at, event, make_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> EventStore:
    ev = [event("A", d) for d in range(11)]  # then silent for 30 days: gone at day 10
    ev += [event("B", d) for d in range(41)]  # every day to the end (day 40)
    ev += [event("C", d) for d in (*range(6), *range(30, 36))]  # 25 quiet days after day 5
    ev += [event("D", d) for d in range(21)]  # cancels on day 20, 20 quiet days to the end
    ev += [event("D", 20, "Cancel", hour=13), event("D", 20, "Cancellation Confirmation",
                                                    hour=13.01)]  # fmt: skip
    return make_store(tmp_path_factory.mktemp("lifetimes"), ev)


def _by_user(store: EventStore, definition: ChurnDefinition) -> dict[str, tuple[int | None, int]]:
    df = lifetimes(Settings(), store, definition)
    assert (df["signup_ts"] == pd.Timestamp(at(-10, 0), unit="ms", tz="UTC")).all()
    # everyone signed up 10 days before the log starts: in it only because still there
    assert (df["log_start"] == pd.Timestamp(at(0), unit="ms", tz="UTC")).all()
    return {r.user_id: (_ms(r.churn_ts), _ms(r.seen_until)) for r in df.itertuples()}


def _ms(t: object) -> int | None:
    return None if pd.isna(t) else int(pd.Timestamp(t).timestamp() * 1000)  # type: ignore[arg-type]


def test_going_quiet_is_the_churn_of_an_inactivity_model(store: EventStore) -> None:
    got = _by_user(store, ChurnDefinition(kind="inactivity", inactivity_days=21))
    assert got == {
        "A": (at(10), at(10)),  # quiet from day 10 to the end, 30 days
        "B": (None, at(40)),
        "C": (at(5), at(35)),  # the first quiet spell counts, though C came back
        "D": (None, at(20, 13.01)),  # 20 quiet days before the end: not yet 21
    }
    assert churn_words(ChurnDefinition(kind="inactivity", inactivity_days=21)) == (
        "go quiet for 21 days"
    )


def test_a_cancellation_is_the_churn_of_a_cancellation_model(store: EventStore) -> None:
    got = _by_user(store, ChurnDefinition())
    end = at(40)  # the store's last event: everyone not cancelled is seen until then
    assert got == {"A": (None, end), "B": (None, end), "C": (None, end),
                   "D": (at(20, 13.01), end)}  # fmt: skip
    assert churn_words(ChurnDefinition(include_downgrade=True)) == "cancel or downgrade"


def test_from_a_scored_day_on_a_spell_not_over_by_then_counts(store: EventStore) -> None:
    quiet = ChurnDefinition(kind="inactivity", inactivity_days=21)

    def churn(since: int) -> dict[str, int | None]:
        df = lifetimes(
            Settings(), store, quiet, since=pd.Timestamp(at(since, 0), unit="ms", tz="UTC")
        )
        return {r.user_id: _ms(r.churn_ts) for r in df.itertuples()}

    # on day 10 C is 5 days into the 25-day spell: gone at its start, as the label counts it
    assert churn(10) == {"A": at(10), "B": None, "C": at(5), "D": None}
    # on day 31 C's spell is over and C is back, with 5 quiet days left before the end
    assert churn(31) == {"A": at(10), "B": None, "C": None, "D": None}
    cancelled = lifetimes(Settings(), store, ChurnDefinition(),
                          since=pd.Timestamp(at(25, 0), unit="ms", tz="UTC"))  # fmt: skip
    assert cancelled["churn_ts"].isna().all()  # D cancelled before day 25


def test_a_curve_of_signups_from_before_the_log_starts_when_it_follows_someone() -> None:
    """Users who signed up 10 and 12 days before the log: nobody is at risk before day 10, so
    the curve starts there at 1 rather than drawing 10 days without churn; then a step per
    churn, each on the users it rests on."""
    durations, events = np.array([15, 20, 30]), np.array([True, True, False])
    curve = _curve("2018-09", durations, events, np.array([10, 12, 10]))
    assert curve["days"] == [10, 15, 20] and curve["retained"][0] == 1.0
    assert curve["at_risk"] == [2, 3, 2]  # the one entering on day 12 is not there on day 10
    assert curve["retained"][1:] == pytest.approx([2 / 3, 1 / 3])
    # signups within the log: from day 0, as before
    assert _curve("2018-10", durations, events, np.zeros(3))["days"][0] == 0
