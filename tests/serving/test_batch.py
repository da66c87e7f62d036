"""Batch scoring of the eventsim dev log: the same probabilities, bands and reasons on DuckDB
and on Spark (where the model runs through mlflow's spark_udf)."""

from __future__ import annotations

import logging
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churnwatch.cli import app
from churnwatch.config import Settings
from churnwatch.ingest.pipeline import ingest
from churnwatch.ingest.store import EventStore
from churnwatch.serving.batch import ScoreReport, score_store


@pytest.fixture(scope="module")
def eventsim_store(eventsim_log: Path, tmp_path_factory: pytest.TempPathFactory) -> EventStore:
    root = tmp_path_factory.mktemp("evstore") / "store"
    ingest([eventsim_log], settings=Settings(data_dir=root.parent), store_dir=root)
    return EventStore(root)


@pytest.fixture()
def served_settings(served_data: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return Settings(data_dir=served_data)


@pytest.mark.eventsim
def test_duckdb_scores_every_active_user(
    eventsim_store: EventStore, served_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "scores.csv"
    report = score_store(settings=served_settings, out=out, store=eventsim_store)
    df = pd.read_csv(out)
    assert report.users == len(df) and df["user_id"].is_unique
    assert 150 < len(df) <= 253  # 253 users in the log, minus those who cancelled
    assert df["probability"].is_monotonic_decreasing
    assert df["probability"].between(0, 1).all()
    assert set(df["band"]) <= {"low", "medium", "high"}
    assert df["reason_1"].notna().all()
    assert report.cutoff == "2018-12-03"  # the log ends at 00:01 on 12-03: complete days only


@pytest.mark.eventsim
def test_as_of_moves_the_cutoff_back(
    eventsim_store: EventStore, served_settings: Settings, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(served_settings.data_dir))
    out = tmp_path / "past.parquet"
    args = ["score", "--store", str(eventsim_store.root), "--out", str(out),
            "--as-of", "2018-11-01T12:00:00+00:00"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    df = pd.read_parquet(out)
    # complete days only: 12:00 on the 1st scores at the midnight that starts the 1st
    assert (df["cutoff"] == pd.Timestamp("2018-11-01", tz="UTC")).all()
    bad = CliRunner().invoke(app, [*args[:5], "--as-of", "last tuesday"])
    assert bad.exit_code == 1 and "ISO 8601" in bad.output


@pytest.mark.eventsim
def test_scores_asked_for_long_after_the_data_say_so(
    eventsim_store: EventStore, served_settings: Settings, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """`score --as-of 2030-01-01` on a log that ends in 2018 scored everyone as silent for 11
    years, 0 in the high band, and said nothing of it."""
    with caplog.at_level(logging.WARNING, logger="churnwatch"):
        score_store(settings=served_settings, out=tmp_path / "now.csv", store=eventsim_store)
        assert "after the store's last event" not in caplog.text  # the default: its last day
        score_store(settings=served_settings, out=tmp_path / "later.csv", store=eventsim_store,
                    as_of=datetime(2030, 1, 1, tzinfo=UTC))  # fmt: skip
    assert "scoring as of 2030-01-01, 4,047 days after the store's last event (2018-12-03)" in (
        caplog.text
    )


@pytest.mark.eventsim
def test_score_refuses_an_output_it_cannot_write_before_starting_an_engine(
    eventsim_store: EventStore, served_settings: Settings, tmp_path: Path, monkeypatch: Any
) -> None:
    """A path without .parquet or .csv is refused with what was expected, before Spark takes
    its seconds to start (it used to start first)."""
    from churnwatch.cli import common
    from churnwatch.errors import ConfigError

    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(served_settings.data_dir))
    started: list[Any] = []
    monkeypatch.setattr(common, "engine", lambda name, *_a, **_k: started.append(name))
    args = ["score", "--store", str(eventsim_store.root), "--out", str(tmp_path / "scores"),
            "--engine", "spark"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    said = " ".join(result.output.split())
    assert result.exit_code == 1 and "expected --out ending in .parquet or .csv" in said
    assert "Got 'scores'" in said and started == []
    assert not (tmp_path / "scores").exists()
    # `score` takes Spark settings as `snapshots` does (a cluster's executor memory, Python)
    conf = ["--spark-master", "spark://host:7077", "--spark-conf", "spark.executor.memory=8g"]
    args = [*args[:4], str(tmp_path / "scores.parquet"), *args[5:], *conf]

    def engine(*_a: Any, **options: Any) -> None:
        started.append(options)
        raise ConfigError("stopped before Spark starts")

    monkeypatch.setattr(common, "engine", engine)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "stopped before Spark starts" in result.output
    assert started == [{"master": "spark://host:7077", "conf": ["spark.executor.memory=8g"]}]


@pytest.mark.eventsim
def test_plan_writes_every_user_in_order_and_contacts_within_the_budget(
    eventsim_store: EventStore, served_settings: Settings, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("CHURNWATCH_DATA_DIR", str(served_settings.data_dir))
    out = tmp_path / "plan.csv"
    args = ["plan", "--budget", "6", "--offer-cost", "0.5", "--save-rate", "0.4",
            "--period-days", "180", "--store", str(eventsim_store.root),
            "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "users to contact" in result.output and "expected net" in result.output
    df = pd.read_csv(out)
    assert 150 < len(df) <= 253 and df["user_id"].is_unique
    assert df["expected_net_gain"].is_monotonic_decreasing
    contacted = df[df["contact"]]
    assert 0 < len(contacted) <= 12 and (contacted["expected_net_gain"] > 0).all()
    assert contacted.index.tolist() == list(range(len(contacted)))  # the first rows
    np.testing.assert_allclose(
        df["expected_net_gain"], df["probability"] * df["value"] * 0.4 - 0.5, rtol=1e-9
    )
    assert contacted["reason_1"].notna().all()
    bad = CliRunner().invoke(app, [*args[:5], "1.5", *args[7:]])
    assert bad.exit_code == 2 and "save-rate" in bad.output


@pytest.fixture(scope="module")
def spark_scored(
    eventsim_store: EventStore,
    served_data: Path,
    spark_engine: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ScoreReport, Path]:
    """The champion's scores on Spark (a folder of part files), made once for the module."""
    mp = pytest.MonkeyPatch()
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path_factory.mktemp("spark") / "spark.parquet"
    report = score_store(settings=Settings(data_dir=served_data), out=out, store=eventsim_store,
                         engine=spark_engine)  # fmt: skip
    mp.undo()
    return report, out


@pytest.mark.spark
@pytest.mark.eventsim
def test_spark_scores_equal_duckdb_scores(
    eventsim_store: EventStore,
    served_settings: Settings,
    tmp_path: Path,
    spark_scored: tuple[ScoreReport, Path],
) -> None:
    duck = tmp_path / "duck.parquet"
    score_store(settings=served_settings, out=duck, store=eventsim_store)
    report, spark_out = spark_scored
    a = pd.read_parquet(duck).set_index("user_id").sort_index()
    b = pd.read_parquet(spark_out).set_index("user_id").sort_index()
    assert report.engine == "spark" and report.users == len(b)
    assert list(a.index) == list(b.index)
    # features agree to 1e-9; the model adds float32 rounding when it is XGBoost (the compiled
    # scorer feeds a DMatrix, the pyfunc a DataFrame): 1e-6 is the scorer's own check
    np.testing.assert_allclose(a["probability"], b["probability"], rtol=0, atol=1e-6)
    assert (a["band"] == b["band"]).all()
    assert (a["reason_1"] == b["reason_1"]).all()


@pytest.mark.spark
@pytest.mark.eventsim
def test_spark_scores_with_a_second_model_in_the_same_session(
    eventsim_store: EventStore,
    served_data: Path,
    tmp_path: Path,
    spark_engine: Any,
    spark_scored: tuple[ScoreReport, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process that scores on Spark, registers another model and scores again (a notebook,
    a job that retrains): each model reaches the executors under a name of its own. Both
    models' folders were called `artifacts`, and Spark refused the second with "exists and
    does not match contents"."""
    import mlflow

    from churnwatch import tracking
    from churnwatch.recipe import ARTIFACT as RECIPE

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    data = tmp_path / "data"
    shutil.copytree(served_data, data)
    settings = Settings(data_dir=data)
    first, first_out = spark_scored  # the champion, scored on Spark in this session
    # the same estimator registered with a threshold no one reaches: a model of other contents
    tracking.setup(settings)
    current = tracking.describe(settings.model_ref)
    model = tracking.load(settings.model_ref).unwrap_python_model()
    strict = tracking.ChurnModel(model.estimator, model.features, 1.0, model.reason_features,
                                 model.typical)  # fmt: skip
    rows = tracking.read_parquet(current["run_id"], "reference.parquet")
    with mlflow.start_run(run_name="strict"):
        mlflow.log_params(current["params"])
        with tracking.download(current["run_id"], RECIPE) as path:
            mlflow.log_artifact(str(path))
        reg = tracking.log_model(strict, rows, promote_if_first=False)
    other = Settings(data_dir=data, model_ref=f"models:/churnwatch/{reg.version}")
    second = score_store(settings=other, out=tmp_path / "second.parquet", store=eventsim_store,
                         engine=spark_engine)  # fmt: skip
    a = pd.read_parquet(first_out).set_index("user_id").sort_index()
    b = pd.read_parquet(tmp_path / "second.parquet").set_index("user_id").sort_index()
    assert first.users == second.users == len(a) == len(b)
    np.testing.assert_allclose(a["probability"], b["probability"], rtol=0, atol=1e-12)
    # the second scoring used the second model: its threshold puts no one in the high band
    assert first.high > 0 and (a["band"] == "high").sum() == first.high
    assert second.high == 0 and not (b["band"] == "high").any()


@pytest.mark.spark
@pytest.mark.eventsim
def test_spark_scoring_says_what_the_executors_python_lacks(
    eventsim_store: EventStore,
    served_settings: Settings,
    spark_engine: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cluster whose nodes lack churnwatch's environment: the executors' `python3` cannot
    import pandas, and the scoring UDF used to fail in every task with a worker traceback.
    Now one check job says which modules are missing and what to set, before anything is
    written; a Python that does not exist is named with the JVM's reason. Here the executors'
    Python is a bare virtual environment of this interpreter (no packages)."""
    import venv

    from churnwatch.errors import ConfigError

    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False, symlinks=True)
    sc = spark_engine.spark.sparkContext
    out = tmp_path / "scores.parquet"
    monkeypatch.setattr(sc, "pythonExec", str(bare / "bin" / "python"))
    with pytest.raises(ConfigError) as lacking:
        score_store(settings=served_settings, out=out, store=eventsim_store, engine=spark_engine)
    said = str(lacking.value)
    assert f"expected the Spark executors' Python ({bare}" in said
    assert "pandas: ModuleNotFoundError: No module named 'pandas'" in said
    assert "churnwatch: ModuleNotFoundError" in said and "spark.pyspark.python=PATH" in said
    assert not out.exists()

    monkeypatch.setattr(sc, "pythonExec", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(ConfigError) as absent:
        score_store(settings=served_settings, out=out, store=eventsim_store, engine=spark_engine)
    said = str(absent.value)
    assert f'Got: java.io.IOException: Cannot run program "{tmp_path / "nowhere"}' in said
    assert not out.exists()


@pytest.mark.spark
def test_the_spark_python_setting_reaches_pyspark(
    spark_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started from Python, not spark-submit, PySpark reads the executors' Python from
    PYSPARK_PYTHON only: `--spark-conf spark.pyspark.python=PATH` was ignored, and the nodes
    ran their own `python3`."""
    from churnwatch.features.engines import SparkEngine

    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    SparkEngine("local[2]", conf={"spark.pyspark.python": "/opt/env/bin/python"})
    assert os.environ["PYSPARK_PYTHON"] == "/opt/env/bin/python"
