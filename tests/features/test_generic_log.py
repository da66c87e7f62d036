"""A log that is not eventsim's: app events of three types, one with an amount. Its catalog
comes from what it holds, its features ignore the future like eventsim's, DuckDB and Spark
agree on it, and training on it backtests a BG/NBD baseline beside the learnt models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from churnwatch.config import Settings
from churnwatch.errors import InputError
from churnwatch.features import build_snapshots
from churnwatch.features.build import spec_for
from churnwatch.features.catalog import FeatureSpec, catalog
from churnwatch.ingest import EventStore, ingest
from churnwatch.labels import ChurnDefinition, CutoffSchedule
from churnwatch.models.bgnbd import BetaGeoBaseline
from churnwatch.models.train import TrainConfig
from churnwatch.monitoring.monitor import monitor
from churnwatch.monitoring.retrain import retrain
from churnwatch.runs import RunSummary, evaluate_registered, run_training
from churnwatch.schema import ColumnMapping
from churnwatch.serving.app import create_app
from churnwatch.serving.batch import score_store
from churnwatch.serving.reasons import describe
from tests.features.helpers import assert_same_features
from tests.features.test_leakage_parity import truncated_copy

START = datetime(2023, 1, 1, tzinfo=UTC)
CHURN = ChurnDefinition(kind="inactivity", inactivity_days=21, horizon_days=21)
SCHEDULE = CutoffSchedule(every_days=7, min_history_days=28)


def write_app_log(
    path: Path, *, users: int = 160, days: int = 180, seed: int = 3, prefix: str = "c"
) -> Path:
    """Users visit at their own rate until they leave (more support tickets before); some
    visits are purchases with an amount."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        rate = rng.gamma(2.0, 0.25)
        leave = int(rng.geometric(1 / 150))
        join = int(rng.integers(0, 60))
        for day in range(join, min(days, join + leave)):
            unhappy = day > join + leave - 20
            for _ in range(rng.poisson(rate * (0.5 if unhappy else 1.0))):
                when = START + timedelta(days=day, seconds=int(rng.integers(0, 86_400)))
                mix = [0.6, 0.15, 0.25] if unhappy else [0.8, 0.18, 0.02]
                kind = rng.choice(["open", "purchase", "support"], p=mix)
                amount = f"{rng.lognormal(3, 0.5):.2f}" if kind == "purchase" else ""
                rows.append(f"{prefix}{u:04d},{when:%Y-%m-%d %H:%M:%S},{kind},{amount}")
    path.write_text("customer,when,what,amount\n" + "\n".join(rows) + "\n")
    return path


def app_log_store(folder: Path) -> EventStore:
    """The app log written and ingested into a store in `folder`."""
    log = write_app_log(folder / "app.csv")
    mapping = ColumnMapping.from_options(
        ["user_id=customer", "ts=when", "page=what", "value=amount"],
        ts_format="%Y-%m-%d %H:%M:%S", ts_min="2020-01-01", dedupe="line",
    )  # fmt: skip
    ingest([log], settings=Settings(store_dir=folder / "store"), mapping=mapping)
    return EventStore(folder / "store")


@pytest.fixture(scope="module")
def app_store(tmp_path_factory: pytest.TempPathFactory) -> EventStore:
    return app_log_store(tmp_path_factory.mktemp("app"))


def test_the_catalog_comes_from_the_log(app_store: EventStore) -> None:
    spec = spec_for(app_store, CHURN, SCHEDULE)
    assert spec.kind == "events" and spec.value
    assert spec.events == ("open", "purchase", "support")  # most frequent first
    assert spec.windows == (7, 21, 42)  # the cutoff spacing, the horizon and twice it
    # the value column's own name, for the reasons ("values summing to ..." told nothing)
    assert spec.value_name == "amount" and FeatureSpec.from_dict(spec.to_dict()) == spec
    older = {k: v for k, v in spec.to_dict().items() if k != "value_name"}  # a recipe before it
    assert FeatureSpec.from_dict(older).value_words == "value"
    names = catalog(spec).names
    assert {"purchase_per_day_7d", "support_21d", "value_mean_42d", "gap_ratio"} <= set(names)
    assert not any(n.startswith(("songs", "thumbs", "is_paid")) for n in names)
    one = spec_for(app_store, CHURN, SCHEDULE, event_types=1)
    assert one.events == ("open",) and "open_7d" not in catalog(one).names  # = events_7d
    assert spec_for(app_store, CHURN, SCHEDULE, features="sparkify") == FeatureSpec()


def test_generic_features_ignore_the_future(app_store: EventStore, tmp_path: Path) -> None:
    spec = spec_for(app_store, CHURN, SCHEDULE)
    cut = START + timedelta(days=105)
    at = CutoffSchedule(explicit=(cut.date(),))
    full, _ = build_snapshots(app_store, definition=CHURN, schedule=at, spec=spec)
    assert full.column_names == ["user_id", "cutoff", *catalog(spec).names, "label"]
    # a store that never held the events after the cutoff gives the same features
    cut_store = truncated_copy(app_store, cut, tmp_path)
    before, _ = build_snapshots(cut_store, definition=CHURN, schedule=at, spec=spec)
    assert_same_features(full, before, names=catalog(spec).names)
    limited, _ = build_snapshots(app_store, definition=CHURN, schedule=at, spec=spec, until=cut)
    assert_same_features(full, limited, names=catalog(spec).names)
    # the labels do see the future: some users of that cutoff churn, some stay
    labels = full["label"].to_pylist()
    assert 0 < sum(labels) < len(labels)
    row = full.to_pylist()[0]
    assert describe("support_per_day_7d", 0.5, row, spec).startswith("0.50 'support' events")
    assert describe("support_7d", 1, row, spec).startswith("1 'support' event in the last 7")
    assert describe("support_7d", 2, row, spec).startswith("2 'support' events in the last 7")
    assert describe("value_sum_7d", 12.5, row, spec).startswith("amount summing to 12.5 in the")
    assert describe("value_per_exposure_day", 2.0, row, spec).startswith("amount of 2 a day since")
    assert describe("value_mean_7d", 5.75, row, spec).startswith("amount of 5.75 an event on av")


@pytest.mark.spark
def test_duckdb_and_spark_agree_on_a_generic_log(app_store: EventStore, spark_engine: Any) -> None:
    spec = spec_for(app_store, CHURN, SCHEDULE)
    duck, _ = build_snapshots(app_store, definition=CHURN, schedule=SCHEDULE, spec=spec)
    spark, _ = build_snapshots(
        app_store, definition=CHURN, schedule=SCHEDULE, spec=spec, engine=spark_engine
    )
    assert duck.schema == spark.schema
    assert_same_features(duck, spark, names=catalog(spec).names)
    assert duck["label"].to_pylist() == spark["label"].to_pylist()


def test_bgnbd_ranks_a_long_silence_as_more_likely_gone() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    active = rng.integers(1, 30, n)
    observed = rng.integers(60, 200, n)
    recency = rng.uniform(1, 50, n)
    X = pd.DataFrame(
        {"active_days_all": active, "observed_days_all": observed, "recency_days": recency}
    )
    model = BetaGeoBaseline().fit(X)
    probe = pd.DataFrame(
        {"active_days_all": [10, 10], "observed_days_all": [120, 120], "recency_days": [2, 90]}
    )
    p = model.predict_proba(probe)[:, 1]
    assert 0 <= p[0] < p[1] <= 1


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RunSummary]:
    """A model trained on the app log, in a store of its own (retrain adds to it)."""
    folder = tmp_path_factory.mktemp("trained")
    settings = Settings(data_dir=folder, store_dir=app_log_store(folder).root)
    config = TrainConfig(definition=CHURN, schedule=SCHEDULE, backtest_folds=4, n_boot=50)
    return settings, run_training(settings=settings, config=config)


def test_training_on_a_generic_log_reports_bgnbd_and_never_serves_it(
    trained: tuple[Settings, RunSummary],
) -> None:
    _, summary = trained
    result = summary.result
    names = [c.name for c in result.candidates]
    assert names[:2] == ["recency_rule", "bgnbd"] and "events_lightgbm" in names
    assert result.chosen.name != "bgnbd" and result.spec.kind == "events"
    run = MlflowClient(summary.tracking_uri).get_run(summary.run_id)
    metrics = run.data.metrics
    assert {"test_roc_auc", "bgnbd_test_roc_auc", "recency_rule_test_roc_auc"} <= set(metrics)
    assert 0.5 < metrics["test_roc_auc"] < 0.95
    assert run.data.params["recipe_features"] == "events"


def test_a_later_log_of_the_same_feed_is_read_with_the_stores_mapping(
    trained: tuple[Settings, RunSummary], tmp_path: Path
) -> None:
    """`evaluate` and `retrain --data` read their logs with eventsim's names, so a CSV feed
    that needed a column mapping could be trained on but neither evaluated nor retrained
    on. Both now read it as the store's last ingest did."""
    settings, _ = trained
    later = write_app_log(tmp_path / "later.csv", users=120, seed=4, prefix="n")
    ev = evaluate_registered(
        "models:/churnwatch@champion", [str(later)], out_dir=tmp_path / "eval",
        settings=settings, n_boot=20,
    )  # fmt: skip
    assert ev.rows > 0 and ev.positives > 0 and ev.in_sample == 0
    assert 0.0 < ev.pooled["roc_auc"]["value"] < 1.0
    assert "--map user_id=customer" in ev.report_path.read_text()  # how the log was read

    posted = tmp_path / "posted.jsonl"  # as the API stores posted events: not the feed's format
    posted.write_text('{"userId": "p1", "ts": 1688000000000, "page": "open"}\n')
    ingest([posted], settings=settings, feed=False)
    before = EventStore(settings.store_path).users()
    retrain(settings, data=[str(later)], n_boot=20)  # the same days: no cutoff to judge on yet
    assert EventStore(settings.store_path).users() == before + 120 - missing_users(later)


def test_train_reads_a_later_log_of_the_feed_with_the_stores_mapping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`train --data later.csv` on a store of a mapped CSV feed read the new log with
    eventsim's names: every row a missing_field, and nothing trained. It reads it as the
    store's last ingest read the feed, as retrain and evaluate do."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = app_log_store(tmp_path)
    later = write_app_log(tmp_path / "later.csv", users=40, seed=6, prefix="t")
    settings = Settings(data_dir=tmp_path / "data", store_dir=store.root)
    config = TrainConfig(definition=CHURN, schedule=SCHEDULE, models=("recency_rule",), n_boot=20)
    before = store.users()
    run_training(settings=settings, config=config, data=[str(later)])
    last = EventStore(store.root).manifest().ingests[-1]
    assert last["quarantined"] == 0 and last["valid"] > 0
    assert EventStore(store.root).users() == before + pd.read_csv(later)["customer"].nunique()


def test_scoring_long_after_the_data_says_why_nobody_is_active(
    trained: tuple[Settings, RunSummary], tmp_path: Path
) -> None:
    """Under an inactivity definition, no user is in the population a year after the last
    event: score, plan and monitor ended in pandas' IndexError or a ZeroDivisionError."""
    settings, _ = trained
    later = datetime(2030, 1, 1, tzinfo=UTC)
    why = r"expected active users at the cutoff 2030-01-01\. Got none: .* gone quiet for 21 days"
    with pytest.raises(InputError, match=why):
        score_store(settings=settings, out=tmp_path / "scores.csv", as_of=later)
    with pytest.raises(InputError, match="expected active users at the cutoff 20"):
        monitor(settings, as_of=later, out_dir=tmp_path / "monitoring", log_to_mlflow=False)


def test_the_api_takes_events_in_the_feeds_own_columns(
    trained: tuple[Settings, RunSummary],
) -> None:
    """A client of a mapped feed could post events only in eventsim's names; with `columns:
    feed` they are read as the store's own ingest read its log (names, time format and its
    `dedupe line` rule, which a retried post must not escape)."""
    settings, _ = trained
    row = {"customer": "api1", "when": "2023-06-30 10:00:00", "what": "support", "amount": ""}
    with TestClient(create_app(settings)) as client:
        default = client.post("/events", json={"events": [row]}).json()
        assert (default["stored"], default["quarantined"]) == (0, 1)
        assert default["rejected"][0]["message"].startswith("missing required field")
        fed = client.post("/events", json={"events": [row], "columns": "feed"})
        assert fed.status_code == 200 and fed.json()["stored"] == 1
        # the feed's rule is `dedupe line`: a post sent again is the same lines, not new ones
        again = client.post("/events", json={"events": [row], "columns": "feed"}).json()
        assert (again["stored"], again["duplicates"]) == (0, 1)
        bad = client.post("/events", json={"events": [row], "columns": "csv"})
        assert bad.status_code == 422
    con = duckdb.connect()
    EventStore(settings.store_path).register(con)
    stored = con.execute("SELECT page, ts FROM events WHERE user_id = 'api1'").fetchall()
    assert stored == [("support", datetime(2023, 6, 30, 10, tzinfo=UTC))]
    assert EventStore(settings.store_path).mapping() is not None  # posts do not replace it


def test_feed_columns_need_a_store_that_recorded_them(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    with TestClient(create_app(settings, load=False)) as client:
        answer = client.post("/events", json={"events": [{"a": 1}], "columns": "feed"})
    assert answer.status_code == 422
    assert "expected a store whose ingest recorded that" in answer.json()["message"]


def missing_users(log: Path) -> int:
    """Users of a written app log with no event (their stay was zero days)."""
    return 120 - pd.read_csv(log)["customer"].nunique()


def test_bgnbd_retries_a_fit_that_does_not_converge_without_printing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """lifetimes prints the optimiser's result before it gives up; the retry, more penalised,
    is the baseline's business, not the user's terminal's."""
    import lifetimes

    real = lifetimes.BetaGeoFitter.fit
    calls: list[float] = []

    def flaky(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(self.penalizer_coef)
        if len(calls) == 1:
            print("fun: nan  success: False")
            raise lifetimes.utils.ConvergenceError("did not converge")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(lifetimes.BetaGeoFitter, "fit", flaky)
    X = pd.DataFrame({"active_days_all": [1, 3, 8, 2] * 50,
                      "observed_days_all": [30, 60, 90, 40] * 50,
                      "recency_days": [29.0, 5.0, 2.0, 20.0] * 50})  # fmt: skip
    BetaGeoBaseline().fit(X)
    assert calls == [0.001, 0.01] and capsys.readouterr().out == ""
