"""Churn definitions, censoring, population rules and a sample of features, on hand-made logs
where the right answer is written by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from churnwatch.errors import ConfigError, InputError
from churnwatch.features import build_snapshots
from churnwatch.labels import EPOCH, ChurnDefinition, CutoffSchedule, unlearnable
from churnwatch.models.train import TrainConfig, train
from tests.features.helpers import at, cutoff, event, make_store


def rows(table: Any) -> dict[tuple[str, int], dict[str, Any]]:
    out = {}
    for r in table.to_pylist():
        day = (r["cutoff"].date() - cutoff(0)).days
        out[(r["user_id"], day)] = r
    return out


@pytest.fixture(scope="module")
def cancellation_log(tmp_path_factory: pytest.TempPathFactory) -> Any:
    ev = []
    # A: active days 0..19, cancels on day 20
    ev += [event("A", d) for d in range(20)]
    ev += [
        event("A", 20, "Cancel", hour=13),
        event("A", 20, "Cancellation Confirmation", hour=13.01),
    ]
    # B: active days 0..40, never cancels; runs the data to day 40
    ev += [event("B", d) for d in range(41)]
    # C: first seen on day 16
    ev += [event("C", d) for d in range(16, 30)]
    # E: paid, downgrades on day 18, stays
    ev += [event("E", d, level="paid") for d in range(18)]
    ev += [event("E", 18, "Submit Downgrade", level="paid", hour=13)]
    ev += [event("E", d, level="free") for d in range(19, 35)]
    # G: visits the Cancel page on day 5 but does not confirm
    ev += [event("G", d) for d in range(0, 30)] + [event("G", 5, "Cancel", hour=14)]
    # H: registration recorded after day 14 (registers late, though seen earlier as a guest
    # would be impossible): registered at day 15 but with events from day 10
    ev += [event("H", d, registration=at(15, 0)) for d in range(10, 30)]
    return make_store(tmp_path_factory.mktemp("cancel"), ev)


def build(store: Any, *cutoffs: int, **definition: Any) -> dict[tuple[str, int], dict[str, Any]]:
    table, _ = build_snapshots(
        store,
        definition=ChurnDefinition(**definition),
        schedule=CutoffSchedule(explicit=tuple(cutoff(c) for c in cutoffs)),
    )
    return rows(table)


def test_cancellation_labels_population_and_censoring(cancellation_log: Any) -> None:
    r = build(cancellation_log, 14, 21, 28)
    # A cancels on day 20: positive at 14 (horizon [14, 28)), gone from 21 on
    assert r[("A", 14)]["label"] == 1
    assert ("A", 21) not in r and ("A", 28) not in r
    # B never cancels: negative while the horizon is observed (data ends on day 40),
    # censored (null, never a negative) at 28 since 28 + 14 > 40
    assert r[("B", 14)]["label"] == 0 and r[("B", 21)]["label"] == 0
    assert r[("B", 28)]["label"] is None
    # C is first seen on day 16: not in the population at 14
    assert ("C", 14) not in r and r[("C", 21)]["label"] == 0
    # H registered on day 15: not in the population at 14 even with events before it
    assert ("H", 14) not in r and ("H", 21) in r
    # a downgrade is not churn by default
    assert r[("E", 14)]["label"] == 0 and r[("E", 21)]["label"] == 0


def test_downgrade_counts_as_churn_when_asked(cancellation_log: Any) -> None:
    r = build(cancellation_log, 14, 21, include_downgrade=True)
    assert r[("E", 14)]["label"] == 1  # downgrades on day 18
    assert r[("E", 21)]["label"] == 0  # still in the population, no churn after day 21
    assert r[("A", 14)]["label"] == 1


def test_features_of_a_known_history(cancellation_log: Any) -> None:
    r = build(cancellation_log, 14)
    b = r[("B", 14)]
    assert b["songs_all"] == 14 and b["songs_7d"] == 7
    assert b["events_all"] == 14 and b["active_days_7d"] == 7 and b["observed_days_all"] == 14
    assert b["songs_per_day_7d"] == pytest.approx(1.0)
    assert b["distinct_artists"] == 3  # Artist 0, 1, 2
    assert b["mean_song_length"] == pytest.approx(200.0)
    assert b["listen_hours_all"] == pytest.approx(14 * 200 / 3600)
    assert b["tenure_days"] == pytest.approx(24.0)  # registered at day -10, cutoff day 14
    assert b["recency_days"] == pytest.approx(0.5)  # last event day 13 at noon
    assert (b["is_male"], b["is_paid"], b["gender"], b["level"]) == (1, 0, "M", "free")
    assert (b["os_family"], b["browser_family"], b["state"]) == ("windows", "firefox", "AZ")
    assert b["thumbs_down_share_all"] == pytest.approx(0.5)  # (0 + 1) / (0 + 0 + 2)
    assert b["trend_events"] == pytest.approx(0.0)  # 1 event/day before and after
    assert b["days_since_level_change"] is None
    e = r[("E", 14)]
    assert e["is_paid"] == 1 and e["level"] == "paid"


def test_the_churn_act_is_never_a_feature(cancellation_log: Any) -> None:
    r = build(cancellation_log, 14)
    g = r[("G", 14)]
    assert g["events_all"] == 14  # the Cancel page view on day 5 is not counted
    assert "cancel" not in " ".join(r[("G", 14)]).lower()


def test_inactivity_definition(tmp_path: Path) -> None:
    ev = [event("F", d) for d in range(0, 11)] + [event("F", d) for d in range(25, 41)]
    ev += [event("B", d) for d in range(41)]
    store = make_store(tmp_path, ev)
    r = build(store, 14, 21, 28, 35, kind="inactivity", inactivity_days=5, horizon_days=7)
    # at 14 F's last event was day 10 (4 days ago): still in, and going quiet -> positive
    assert r[("F", 14)]["label"] == 1
    # at 21 F has been silent 11 days >= 5: already churned, not in the population
    assert ("F", 21) not in r
    # at 28 F is back; no 5-day gap starts in [25, 35): negative (28 + 7 + 5 <= 40)
    assert r[("F", 28)]["label"] == 0
    # at 35 the horizon plus the 5 days after it run past day 40: censored
    assert r[("F", 35)]["label"] is None
    assert r[("B", 14)]["label"] == 0


def test_schedule_every_k_days_after_min_history(cancellation_log: Any) -> None:
    table, report = build_snapshots(
        cancellation_log, schedule=CutoffSchedule(every_days=10, min_history_days=5)
    )
    assert [row["cutoff"] for row in report.per_cutoff] == [
        cutoff(d).isoformat() for d in (5, 15, 25, 35)
    ]
    assert report.rows == table.num_rows
    assert report.positives == sum(1 for y in table["label"].to_pylist() if y == 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "gone"}, "definition has to be one of"),
        ({"horizon_days": 0}, "horizon and inactivity days have to be >= 1"),
    ],
)
def test_bad_definitions(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ChurnDefinition(**kwargs)


@pytest.mark.parametrize(
    ("definition", "schedule", "says"),
    [
        # the data ends on day 40; the first cutoff (day 14) needs 30 days after it
        ({"horizon_days": 30}, {}, ["Got none labelled", "30 days after it (the horizon)",
                                    f"has to reach {cutoff(44)}", "ends " + str(cutoff(40))]),
        ({"kind": "inactivity", "horizon_days": 20, "inactivity_days": 10}, {},
         ["Got none labelled", "30 days after it (the 20-day horizon and 10 inactivity days)"]),
        # at day 28 the one cancellation (A, day 20) is in the past: everyone labelled stays
        ({"horizon_days": 7}, {"explicit": (cutoff(28),)},
         [f"cutoffs {cutoff(28)}..{cutoff(28)}), all non-churners"]),
    ],
)  # fmt: skip
def test_training_says_why_no_model_can_be_learnt(
    cancellation_log: Any, definition: dict[str, Any], schedule: dict[str, Any], says: list[str]
) -> None:
    config = TrainConfig(
        definition=ChurnDefinition(**definition), schedule=CutoffSchedule(**schedule),
        models=("rate_rule",),
    )  # fmt: skip
    with pytest.raises(InputError) as err:
        train(cancellation_log, config)
    for text in says:
        assert text in str(err.value)


def test_a_log_without_cancellations_is_told_to_churn_by_inactivity(tmp_path: Path) -> None:
    """A purchase log trained with the default definition said "Give a log with more users,
    or more days past the cutoffs": no number of users or days gives it a cancellation."""
    ev = [event(u, d) for u in ("A", "B", "C") for d in range(0, 41, 2)]
    ev += [event("B", 30, "Submit Downgrade", hour=13)]
    store = make_store(tmp_path, ev)
    config = TrainConfig(models=("rate_rule",))
    with pytest.raises(InputError) as err:
        train(store, config)
    said = str(err.value)
    assert "all non-churners: the data hold no 'Cancellation Confirmation' event" in said
    assert "--definition inactivity" in said and "more users" not in said
    # with --include-downgrade a downgrade is a churn too: asked for both pages, and when the
    # data hold one, the advice is the one about more data
    asked: list[tuple[str, ...]] = []

    def holds(*pages: str) -> bool:
        asked.append(pages)
        return True

    definition = ChurnDefinition(include_downgrade=True)
    why = unlearnable(pd.Series([cutoff(14)]), pd.Series([0.0]), definition, at(40, 0), holds)
    assert asked == [("Cancellation Confirmation", "Submit Downgrade")]
    assert why is not None and "more users" in why and "--definition inactivity" not in why


@pytest.mark.parametrize("schedule", [CutoffSchedule(), CutoffSchedule(every_days=3,
                                      min_history_days=0)])  # fmt: skip
def test_the_first_cutoff_on_or_after_a_day_is_the_schedules_own(schedule: CutoffSchedule) -> None:
    """`first_on_or_after` (what retrain waits for) agrees with the cutoffs `days` lists."""
    first, last = datetime(2018, 10, 1, 0, 0, 3, tzinfo=UTC), datetime(2019, 1, 30, tzinfo=UTC)
    days = [EPOCH + timedelta(days=d) for d in schedule.days(first, last)]
    for day in (first.date() + timedelta(days=k) for k in range(100)):
        assert schedule.first_on_or_after(first, day) == min(d for d in days if d >= day)
    explicit = CutoffSchedule(explicit=(date(2018, 11, 5), date(2018, 11, 19)))
    assert explicit.first_on_or_after(first, date(2018, 11, 6)) == date(2018, 11, 19)
    assert explicit.first_on_or_after(first, date(2018, 11, 20)) is None
