"""Batch scoring: every active user of a store, scored by the champion, to Parquet or CSV.

On DuckDB the features come from the snapshot SQL and the model runs through the compiled
`Scorer`. On Spark the same SQL runs on the cluster, the model runs through
`mlflow.pyfunc.spark_udf`, and the reasons through `mapInPandas` with the model files shipped
to the executors; nothing is collected to the driver.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnwatch import optional, tracking
from churnwatch.config import Settings
from churnwatch.errors import InputError
from churnwatch.features.build import build_snapshots, prepare
from churnwatch.features.catalog import FeatureSpec, catalog
from churnwatch.features.engines import SparkEngine, make_engine
from churnwatch.ingest.store import EventStore
from churnwatch.labels import CutoffSchedule, cutoff_for, require_population
from churnwatch.models.plan import Offer, make_plan, values_for
from churnwatch.models.scorer import Scorer
from churnwatch.models.survival import HORIZONS, median_days, risk_at
from churnwatch.recipe import Recipe, feature_mismatch
from churnwatch.serving.reasons import top_reasons

log = logging.getLogger(__name__)
N_REASONS = 3
# libraries a model may need beyond scikit-learn: the executors need them too when it does
OPTIONAL_MODEL_LIBS = ("lightgbm", "xgboost", "shap")
HORIZON_COLUMNS = [*(f"p_{h}d" for h in HORIZONS), "median_days_to_churn"]
OUT_COLUMNS = ["user_id", "cutoff", "probability", "band", *HORIZON_COLUMNS, "reasons",
               *(f"reason_{i + 1}" for i in range(N_REASONS))]  # fmt: skip


@dataclass
class ScoreReport:
    users: int
    cutoff: str
    model: str
    engine: str
    out: str
    seconds: float
    high: int


def band(p: float, threshold: float) -> str:
    """high at or above the model's threshold, medium from half of it, else low."""
    return "high" if p >= threshold else "medium" if p >= threshold / 2 else "low"


def explain_frame(
    scorer: Scorer, frame: pd.DataFrame, spec: FeatureSpec | None = None
) -> pd.DataFrame:
    """Probabilities, bands and reasons for feature rows `frame` (index: user_id)."""
    scores = scorer.score_frame(frame)
    typical = scorer.typical
    rows = [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]
    reasons = [
        top_reasons(
            scorer.features,
            rows[i],
            scores.contributions[i],
            k=N_REASONS,
            allowed=scorer.reason_features,
            spec=spec,
            typical=typical,
        )  # fmt: skip
        if scores.contributions is not None
        else []
        for i in range(len(rows))
    ]
    out = pd.DataFrame(
        {
            "user_id": frame.index.astype(str),
            "probability": scores.probability,
            "band": [band(p, scorer.threshold) for p in scores.probability],
            "reasons": [json.dumps(r, default=_json) for r in reasons],
        }
    )
    for k in range(N_REASONS):
        out[f"reason_{k + 1}"] = [r[k]["text"] if len(r) > k else None for r in reasons]
    return out


def with_horizons(scores: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """P(churn) at 7, 14, 30 and 60 days and the median days to churn (models.survival)."""
    p = scores["probability"].to_numpy(dtype=float)
    out = scores.copy()
    for h in HORIZONS:
        out[f"p_{h}d"] = risk_at(p, horizon_days, h)
    out["median_days_to_churn"] = median_days(p, horizon_days)
    return out


def _json(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else str(v)


def score_store(
    *,
    settings: Settings,
    out: Path,
    store: EventStore | None = None,
    engine: Any = "duckdb",
    as_of: datetime | None = None,
    model_ref: str | None = None,
) -> ScoreReport:
    """Score every active user of `store` with `model_ref` (default the champion)."""

    started = time.perf_counter()
    job = _job(settings, out, store, as_of, model_ref)
    store, ref, recipe, cutoff, until = job.store, job.ref, job.recipe, job.cutoff, job.until
    definition = recipe.definition
    schedule = CutoffSchedule(explicit=(cutoff.date(),))
    eng = make_engine(engine, settings) if isinstance(engine, str) else engine
    if isinstance(eng, SparkEngine):
        sql = prepare(store, eng, definition, schedule, until, recipe.spec)
        users, high = _score_spark(eng, sql, ref, out, cutoff, recipe.spec,
                                   recipe.definition.horizon_days)  # fmt: skip
    else:
        scorer = Scorer(tracking.load(ref).unwrap_python_model())
        _, result = _scored(store, eng, settings, scorer, recipe, schedule, until)
        result.insert(1, "cutoff", pd.Timestamp(cutoff))
        result = with_horizons(result, recipe.definition.horizon_days)[OUT_COLUMNS]
        result = result.sort_values("probability", ascending=False, kind="stable")
        _write(result, out)
        users, high = len(result), int((result["band"] == "high").sum())
    return ScoreReport(
        users=users,
        cutoff=cutoff.date().isoformat(),
        model=job.model,
        engine=getattr(eng, "name", str(engine)),
        out=str(out),
        seconds=time.perf_counter() - started,
        high=high,
    )


@dataclass(frozen=True)
class _Job:
    """What a batch job over the store scores with: the model's ref and recipe, and the
    cutoff (and event-time limit) it scores at."""

    store: EventStore
    ref: str
    recipe: Recipe
    model: str  # "churnwatch v3", for the report
    cutoff: datetime
    until: datetime | None


def check_job(store: EventStore, out: Path) -> None:
    """The checks a batch job can make before any engine starts (Spark takes seconds): a store
    with events, and an output path of a format it writes."""
    store.require()
    if out.suffix not in (".parquet", ".csv"):
        raise InputError(
            f"expected --out ending in .parquet or .csv (on Spark, a folder of that name). "
            f"Got {out.name!r}."
        )


def _job(
    settings: Settings,
    out: Path,
    store: EventStore | None,
    as_of: datetime | None,
    model_ref: str | None,
) -> _Job:
    """Check the store and the output path, and read the model's recipe."""
    store = store or EventStore(settings.store_path)
    check_job(store, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ref = model_ref or settings.model_ref
    tracking.setup(settings)
    meta = tracking.describe(ref)
    last = store.last_event()
    cutoff, until = cutoff_for(last, as_of)
    model = f"{meta['name']} v{meta['version']}" if meta["version"] else ref
    recipe = tracking.read_recipe(meta)
    require_population(cutoff, last, recipe.definition)
    for warning in (feature_mismatch(recipe, model), past_the_data(cutoff, last)):
        if warning:
            log.warning(warning)
    return _Job(store, ref, recipe, model, cutoff, until)


def past_the_data(cutoff: datetime, last_event: datetime) -> str | None:
    """A warning when the scores are asked for more than a week after the store's last event:
    every user then looks as if they had gone quiet (a log not ingested yet, a typo)."""
    days = (cutoff - pd.Timestamp(last_event).floor("D").to_pydatetime()).days
    if days <= 7:
        return None
    return (
        f"scoring as of {cutoff:%Y-%m-%d}, {days:,} days after the store's last event "
        f"({last_event:%Y-%m-%d}): every user's activity stops that long before the cutoff, "
        "so all read as gone quiet. Ingest the newer events first, or score as of an earlier "
        "time."
    )


def _scored(
    store: EventStore,
    eng: Any,
    settings: Settings,
    scorer: Scorer,
    recipe: Recipe,
    schedule: CutoffSchedule,
    until: datetime | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every active user's snapshot row (all the catalog's columns, index user_id) and their
    probability, band and reasons."""
    table, _ = build_snapshots(
        store, definition=recipe.definition, schedule=schedule, engine=eng, settings=settings,
        until=until, spec=recipe.spec,
    )  # fmt: skip
    full = table.to_pandas().set_index("user_id")
    if full.empty:
        (day,) = schedule.explicit
        cutoff = datetime(day.year, day.month, day.day, tzinfo=UTC)
        require_population(cutoff, store.last_event(), recipe.definition, users=0)
    frame = full[scorer.features]
    scorer.verify(frame.head(256))
    return full, explain_frame(scorer, frame, recipe.spec)


@dataclass
class PlanReport:
    summary: dict[str, Any]
    cutoff: str
    model: str
    out: str
    seconds: float
    why_nobody: str | None = None  # why no one is to be contacted, when no one is


PLAN_COLUMNS = ["user_id", "contact", "probability", "value", "expected_loss",
                "expected_net_gain", "band",
                *(f"reason_{i + 1}" for i in range(N_REASONS))]  # fmt: skip


def plan_store(
    *,
    settings: Settings,
    out: Path,
    offer: Offer,
    store: EventStore | None = None,
    as_of: datetime | None = None,
    model_ref: str | None = None,
) -> PlanReport:
    """A retention plan for every active user of `store` (see `models.plan`): scores with
    `model_ref` (default the champion), values from the log and the settings' prices, and the
    users to contact within `offer`'s budget; written to `out` (.csv or .parquet), every user
    in plan order."""
    started = time.perf_counter()
    job = _job(settings, out, store, as_of, model_ref)
    recipe, cutoff = job.recipe, job.cutoff
    scorer = Scorer(tracking.load(job.ref).unwrap_python_model())
    with closing(make_engine("duckdb", settings)) as eng:
        full, result = _scored(job.store, eng, settings, scorer, recipe,
                               CutoffSchedule(explicit=(cutoff.date(),)), job.until)  # fmt: skip
    value = values_for(full, recipe.spec, settings, offer.period_days)
    plan = make_plan(full.index, result["probability"].to_numpy(), value, offer)
    table = plan.users.merge(result.drop(columns=["probability"]), on="user_id", how="left")
    _write(table[PLAN_COLUMNS], out)
    return PlanReport(
        summary=plan.summary(),
        cutoff=cutoff.date().isoformat(),
        model=job.model,
        out=str(out),
        seconds=time.perf_counter() - started,
        why_nobody=plan.why_nobody(),
    )


def _write(df: pd.DataFrame, out: Path) -> None:
    if out.suffix == ".csv":
        df.to_csv(out, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), out, compression="zstd")


@functools.cache
def _shipping() -> tempfile.TemporaryDirectory[str]:
    """The folder of the archives shipped to Spark, kept while the process lives (as is its
    Spark session): an executor that joins the session later fetches every archive added to
    it."""
    return tempfile.TemporaryDirectory(prefix="churnwatch-spark-")


def _score_spark(
    eng: Any,
    sql: str,
    ref: str,
    out: Path,
    cutoff: datetime,
    spec: FeatureSpec,
    horizon_days: int,
) -> tuple[int, int]:
    with tracking.local_copy(ref) as local:
        return _score_spark_with(eng, sql, local, out, cutoff, spec, horizon_days)


def _score_spark_with(
    eng: Any,
    sql: str,
    local: Path,
    out: Path,
    cutoff: datetime,
    spec: FeatureSpec,
    horizon_days: int,
) -> tuple[int, int]:
    """Batch scoring on Spark with the model copied to `local`: its probabilities through
    mlflow's spark_udf, its reasons in `mapInPandas`. The model reaches the executors as an
    archive of a name of its own: in one session Spark refuses a second file of a name with
    other contents (a second model scored in the same process), and it ships a local folder
    only in local mode, an archive to any cluster."""
    ps = optional.pyspark()
    SparkFiles, F, T = ps.SparkFiles, ps.functions, ps.types  # noqa: N806  # Spark's names
    spark = eng.spark
    kind = catalog(spec).kinds
    probe = Scorer(tracking.load_local(local).unwrap_python_model())
    features, threshold = probe.features, probe.threshold
    # before a UDF fails in every task: the executors' Python has what loading this model took
    loaded = tuple(m for m in OPTIONAL_MODEL_LIBS if m in sys.modules)
    needs = ("pandas", "pyarrow", "mlflow", "churnwatch", *loaded)
    eng.check_python(needs, compare=("churnwatch", "sklearn", "mlflow", "pandas", "numpy", *loaded))
    types = {"count": "bigint", "category": "string"}
    cols = [F.col("user_id").cast("string").alias("user_id")] + [
        F.col(f).cast(types.get(kind.get(f, ""), "double")).alias(f) for f in features
    ]
    sdf = eng.frame(sql).select(*cols)
    udf = tracking.spark_udf(spark, local)
    sdf = sdf.withColumn("probability", udf(F.struct(*features)))
    stem = Path(_shipping().name) / f"model-{uuid.uuid4().hex}"
    archive = shutil.make_archive(str(stem), "zip", local)
    spark.sparkContext.addArchive(archive)
    name = os.path.basename(archive)
    cutoff_ts = pd.Timestamp(cutoff)

    def explain(batches: Any) -> Any:
        scorer = Scorer(tracking.load_local(SparkFiles.get(name)).unwrap_python_model())
        for pdf in batches:
            frame = pdf.set_index("user_id")[features]
            part = explain_frame(scorer, frame, spec)
            part["probability"] = pdf["probability"].to_numpy()  # the spark_udf's, as served
            part["band"] = [band(p, threshold) for p in part["probability"]]
            part.insert(1, "cutoff", cutoff_ts)
            yield with_horizons(part, horizon_days)[OUT_COLUMNS]

    schema = T.StructType(
        [T.StructField("user_id", T.StringType()), T.StructField("cutoff", T.TimestampType()),
         T.StructField("probability", T.DoubleType()), T.StructField("band", T.StringType())]
        + [T.StructField(c, T.DoubleType()) for c in HORIZON_COLUMNS]
        + [T.StructField("reasons", T.StringType())]
        + [T.StructField(f"reason_{i + 1}", T.StringType()) for i in range(N_REASONS)]
    )  # fmt: skip
    result = sdf.mapInPandas(explain, schema=schema).cache()
    writer = result.orderBy(F.desc("probability")).write.mode("overwrite")
    if out.suffix == ".csv":
        writer.option("header", True).csv(str(out))
    else:
        writer.parquet(str(out))
    counts = result.agg(F.count("*").alias("n"), F.sum((F.col("band") == "high").cast("int")))
    n, high = counts.collect()[0]
    result.unpersist()
    return int(n), int(high or 0)
