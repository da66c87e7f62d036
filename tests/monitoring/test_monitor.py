"""monitor: reports, logged scores, realised performance once labels mature, and the
champion's swap in a running API when the registry moves."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from churnwatch import tracking
from churnwatch.cli.operations import _not_matured, _print_monitoring
from churnwatch.config import Settings
from churnwatch.ingest.store import EventStore
from churnwatch.monitoring.monitor import monitor, results
from churnwatch.monitoring.performance import (
    expected_pr_auc,
    expected_roc_auc,
    read_predictions,
)
from churnwatch.recipe import ARTIFACT as RECIPE
from churnwatch.serving.app import create_app


def test_cbpe_estimates_match_simulated_labels() -> None:
    rng = __import__("numpy").random.default_rng(0)
    p = rng.beta(1, 12, 20_000)
    y = rng.random(len(p)) < p  # labels drawn with exactly these probabilities
    from sklearn.metrics import average_precision_score, roc_auc_score

    assert abs(expected_roc_auc(p) - roc_auc_score(y, p)) < 0.02
    assert abs(expected_pr_auc(p) - average_precision_score(y, p)) < 0.02


def test_monitor_judges_a_cohort_once_its_labels_mature(
    data_copy: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = EventStore(data_copy.store_path)
    end = store.last_event()
    early = monitor(data_copy, as_of=end - timedelta(days=21), out_dir=tmp_path / "early")
    assert early.cohorts and not any(c["matured"] for c in early.cohorts)
    # before any label: when the first one will come, and the estimate meanwhile
    ready = pd.Timestamp(early.cutoff) + timedelta(days=early.horizon_days)
    said = _not_matured(early)
    assert f"(cutoff {early.cutoff})" in said and f"reaches {ready.date()}" in said
    assert "(CBPE): 0." in said
    assert Path(early.html).stat().st_size > 100_000  # Evidently's self-contained report
    summary = json.loads((tmp_path / "early" / "summary.json").read_text())
    assert 0 <= summary["drift"]["share_drifted"] <= 1 and summary["run_id"]

    now = monitor(data_copy)  # the default folder, where readers look
    logged = read_predictions(store)
    assert logged["cutoff"].nunique() == 2 and set(logged["model_version"]) == {now.model_version}
    matured = [c for c in now.cohorts if c["matured"]]
    assert [pd.Timestamp(c["cutoff"]).date().isoformat() for c in matured] == [early.cutoff]
    # the champion was trained on the whole log: that cohort's labels are ones it learnt
    assert now.latest_realised["learnt"] is True
    _print_monitoring(now)
    said = " ".join(capsys.readouterr().out.split())
    assert f"(in-sample: v{now.model_version} learnt these labels)" in said
    assert 0.5 < matured[0]["roc_auc"] <= 1 and matured[0]["churners"] > 0
    assert now.latest_realised["cutoff"].startswith(early.cutoff)
    run = MlflowClient().get_run(now.run_id)
    assert run.data.tags["churnwatch.kind"] == "monitor" and "drift_share" in run.data.metrics
    assert "realised_roc_auc" in run.data.metrics

    # readers (the dashboard) get the latest run's results through one function
    user = str(logged["user_id"].iloc[0])
    found = results(data_copy, store, user_id=user)
    assert found.summary is not None and found.summary["cutoff"] == now.cutoff
    assert set(found.drift["column"]) >= {"recency_days"} and "psi" in found.drift
    assert len(found.cohorts) == len(now.cohorts)
    assert list(found.scores["cutoff"]) == sorted(found.scores["cutoff"])
    assert len(found.scores) == 2 and set(found.scores["user_id"]) == {user}


def test_a_cohort_past_the_models_labels_is_not_called_in_sample(
    data_copy: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same model registered as trained on labels that ended long ago: the cohort it
    scored is out of time for it, and `learnt` says so (the CLI adds "in-sample" otherwise)."""
    import mlflow

    tracking.setup(data_copy)
    current = tracking.describe("models:/churnwatch@champion")
    model = tracking.load("models:/churnwatch@champion").unwrap_python_model()
    rows = tracking.read_parquet(current["run_id"], "reference.parquet")
    with mlflow.start_run(run_name="trained-long-ago"):
        mlflow.log_params({**current["params"], "labels_seen_until": "2000-01-01"})
        for name in ("reference.parquet", "score_reference.parquet", RECIPE):
            with tracking.download(current["run_id"], name) as path:
                mlflow.log_artifact(str(path))
        reg = tracking.log_model(model, rows, promote_if_first=False)
    tracking.set_aliases({"champion": reg.version})
    end = EventStore(data_copy.store_path).last_event()
    monitor(data_copy, as_of=end - timedelta(days=21), out_dir=tmp_path / "early")
    now = monitor(data_copy, out_dir=tmp_path / "now")
    assert now.latest_realised["model_version"] == reg.version
    assert now.latest_realised["learnt"] is False
    _print_monitoring(now)
    said = " ".join(capsys.readouterr().out.split())
    assert f"latest matured cohort {now.latest_realised['cutoff'][:10]} (v{reg.version})" in said
    assert "in-sample" not in said


def test_the_drift_reference_is_the_population_the_model_was_trained_on(
    data_copy: Settings, tmp_path: Path
) -> None:
    """The reference holds every user at the last three weekly cutoffs of the training data,
    censored ones included, not the backtest's older cutoffs: so `monitor` with no new data
    finds no drift (the older reference reached back to the log's first weeks, when every user
    was new, and read as drift by itself)."""
    from churnwatch.runs import REFERENCE_CUTOFFS

    tracking.setup(data_copy)
    run_id = tracking.describe("models:/churnwatch@champion")["run_id"]
    reference = tracking.read_parquet(run_id, "reference.parquet")
    cutoffs = sorted(pd.to_datetime(reference["cutoff"]).unique())
    assert len(cutoffs) == REFERENCE_CUTOFFS
    assert all((b - a).days == 7 for a, b in zip(cutoffs, cutoffs[1:], strict=False))
    store = EventStore(data_copy.store_path)
    assert (store.last_event() - cutoffs[-1].to_pydatetime()) < timedelta(days=8)
    assert reference["label"].isna().any() and reference["label"].notna().any()
    assert reference["score"].between(0, 1).all()
    report = monitor(data_copy, out_dir=tmp_path / "now")
    assert report.drift["share_drifted"] < data_copy.alert_drift_share
    assert not [a for a in report.alerts if a["kind"] == "drift"]


def test_the_api_picks_up_a_promotion_by_polling(data_copy: Settings) -> None:
    settings = Settings(data_dir=data_copy.data_dir, reload_poll_seconds=0.2)
    with TestClient(create_app(settings)) as client:
        before = client.get("/model").json()["version"]
        tracking.setup(settings)
        strong = tracking.load("models:/churnwatch@champion").unwrap_python_model()
        rows = tracking.read_parquet(
            tracking.describe("models:/churnwatch@champion")["run_id"], "reference.parquet"
        )
        import mlflow

        with mlflow.start_run(run_name="promotion"):
            reg = tracking.log_model(strong, rows, promote_if_first=False)
        tracking.set_aliases({"champion": reg.version, "previous": before})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if client.get("/model").json()["version"] == reg.version:
                break
            time.sleep(0.2)
        assert client.get("/model").json()["version"] == reg.version != before
