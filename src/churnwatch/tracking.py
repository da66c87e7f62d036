"""MLflow: the only module that imports mlflow.

Tracking URI: `MLFLOW_TRACKING_URI` when set, else `sqlite:///<data dir>/mlflow.db` with
artifacts in `<data dir>/mlartifacts`. Nothing is configured at import time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.models import infer_signature
from mlflow.protos.databricks_pb2 import ALREADY_EXISTS, RESOURCE_ALREADY_EXISTS, ErrorCode
from mlflow.pyfunc import PythonModel  # type: ignore[attr-defined]

from churnwatch.config import Settings
from churnwatch.errors import RegistryError
from churnwatch.recipe import ARTIFACT as RECIPE
from churnwatch.recipe import Recipe

log = logging.getLogger(__name__)

# MLflow draws a progress bar for every artifact download, even a local copy of one small file
# (each `evaluate`, `score` and API start): noise in the output. A user who wants it sets it.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
MODEL_NAME = "churnwatch"
EXPERIMENT = "churnwatch"


def tracking_uri(settings: Settings) -> str:
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    db = (settings.data_dir / "mlflow.db").resolve()
    return f"sqlite:///{db}"


def setup(settings: Settings) -> str:
    """Point MLflow at the configured store and experiment; return the tracking URI."""
    uri = tracking_uri(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    # MLflow copies the URI into the environment; undo that, so that MLFLOW_TRACKING_URI stays
    # what the user set and a later setup() with other settings is not overridden by it
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    with _quiet_mlflow():  # the first call creates a new store's tables
        if mlflow.get_experiment_by_name(EXPERIMENT) is None:
            # a tracking server chooses where artifacts go; the local default keeps them by the DB
            local = uri.startswith("sqlite:")
            artifacts = (settings.data_dir / "mlartifacts").resolve().as_uri() if local else None
            mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)
        mlflow.set_experiment(EXPERIMENT)
    return uri


class ChurnModel(PythonModel):
    """The served model: snapshot feature rows in, calibrated churn probabilities out."""

    def __init__(
        self,
        estimator: Any,
        features: list[str],
        threshold: float,
        reason_features: list[str] | None = None,
        typical: dict[str, float] | None = None,
    ) -> None:
        self.estimator = estimator
        self.features = features
        self.threshold = threshold
        # the features that may be given as reasons (stable across the backtest); None: all
        self.reason_features = reason_features
        # each numeric feature's median over the rows the model learnt from: the typical user
        # a reason compares with (None in models logged before it was kept)
        self.typical = typical

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> np.ndarray:
        frame = model_input.reindex(columns=self.features)
        return np.asarray(self.estimator.predict_proba(frame)[:, 1])


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]


def signature_rows(rows: pd.DataFrame, head: int = 1000) -> pd.DataFrame:
    """As few rows as give MLflow the signature it would infer from all of `rows`: the first
    `head`, and for every column with a missing value one row where it is missing (MLflow
    marks a column required when none is). Inference reads every value: on the 200,000
    labelled rows of `make demo`'s training it took 20 s (these: 0.15 s)."""
    missing = rows.isna()
    where = {int(missing[c].to_numpy().argmax()) for c in rows.columns if missing[c].any()}
    return rows.iloc[sorted(set(range(min(head, len(rows)))) | where)]


def log_model(
    model: ChurnModel,
    example: pd.DataFrame,
    *,
    promote_if_first: bool = True,
) -> Registered:
    """Log the model to the active run, register it, and alias it `champion` if none is."""
    # counts stay int64, as the snapshot table has them (never null: absent means 0)
    rows = signature_rows(example[model.features])
    with warnings.catch_warnings():  # MLflow's hint on integer columns: they carry no nulls
        warnings.filterwarnings("ignore", message=".*Inferred schema contains integer")
        signature = infer_signature(rows, model.predict(None, rows))
    with _quiet_mlflow():
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=model,
            signature=signature,
            input_example=rows.head(3),
        )
    # registered through the client rather than `registered_model_name`, whose fluent path
    # prints "Successfully registered model ..." and "Created version ..." to stderr: the CLI
    # says which version it registered in its own words
    client = MlflowClient()
    try:
        client.create_registered_model(MODEL_NAME)
    except mlflow.exceptions.MlflowException as e:
        if e.error_code not in (ErrorCode.Name(RESOURCE_ALREADY_EXISTS),
                                ErrorCode.Name(ALREADY_EXISTS)):  # fmt: skip
            raise
    created = client.create_model_version(
        MODEL_NAME, source=info.model_uri, run_id=info.run_id, model_id=info.model_id
    )
    version = str(created.version)
    aliases: list[str] = []
    if promote_if_first:
        try:
            client.get_model_version_by_alias(MODEL_NAME, "champion")
        except mlflow.exceptions.MlflowException:
            client.set_registered_model_alias(MODEL_NAME, "champion", version)
            aliases.append("champion")
    active = mlflow.active_run()
    return Registered(MODEL_NAME, version, active.info.run_id if active else "", tuple(aliases))


# What MLflow logs that says nothing a user can act on: the hint to log models from code
# instead of a pickled object (a choice made here, once), the check of the input example, and
# the creation of the tables of a new local store.
_MLFLOW_CHATTER = (
    "Passing a Python object as `python_model`",
    "Validating input example",
    "Creating initial MLflow database tables",
    "Updating database tables",
    "Selected backend for flavor",  # each spark_udf
    # each spark_udf: the executors run churnwatch's own environment, which batch scoring
    # checks on them first (SparkEngine.check_python)
    'Calling `spark_udf()` with `env_manager="local"`',
)


class _DropChatter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_MLFLOW_CHATTER)


@contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Drop MLflow's _MLFLOW_CHATTER from its handlers (its logger does not propagate); every
    other message, warnings included, still shows."""
    handlers = logging.getLogger("mlflow").handlers
    drop = _DropChatter()
    for h in handlers:
        h.addFilter(drop)
    try:
        yield
    finally:
        for h in handlers:
            h.removeFilter(drop)


@contextmanager
def run(name: str) -> Iterator[str]:
    """An MLflow run in the configured experiment; yields its id."""
    with mlflow.start_run(run_name=name) as active:
        yield active.info.run_id


@contextmanager
def local_copy(ref: str) -> Iterator[Path]:
    """A copy of the model at `ref` (to ship to Spark executors), `model` in a temporary folder
    of its own, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="churnwatch-model-") as tmp:
        yield Path(mlflow.artifacts.download_artifacts(ref, dst_path=str(Path(tmp) / "model")))


def load_local(path: str | Path) -> Any:
    """A pyfunc model from a local folder made by `local_copy`."""
    return mlflow.pyfunc.load_model(str(path))


def spark_udf(spark: Any, path: str | Path) -> Any:
    """The model at a local folder as a Spark UDF returning doubles."""
    with _quiet_mlflow():
        return mlflow.pyfunc.spark_udf(spark, str(path), result_type="double", env_manager="local")


def log_run(
    *,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    artifacts: list[Path],
) -> None:
    mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
    mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)})
    mlflow.set_tags(tags)
    for path in artifacts:
        mlflow.log_artifact(str(path))


REF_FORMS = "models:/NAME@ALIAS, models:/NAME/VERSION or runs:/RUN_ID/PATH"
# what a model reference looks like (the API's schema refuses anything else with a 422)
MODEL_REF = r"^(models:/[^/@\s]+(@[^/@\s]+|/[0-9]+)|runs:/[0-9a-f]{8,64}/\S+)$"


def load(ref: str) -> Any:
    """A pyfunc model from a registry reference (`models:/churnwatch@champion`) or a run. It
    is read into memory from a copy that is then removed: from a tracking server, MLflow
    would leave each load's copy in a temporary folder of its own. Raises RegistryError when
    the reference is malformed or the registry cannot answer."""
    _check_ref(ref)
    try:
        with tempfile.TemporaryDirectory(prefix="churnwatch-model-") as tmp:
            return mlflow.pyfunc.load_model(ref, dst_path=tmp)
    except mlflow.exceptions.MlflowException as exc:
        raise _unknown(ref, exc) from exc


def describe(ref: str) -> dict[str, Any]:
    """Registry facts about `ref`: name, version, aliases, run id, training time, metrics and
    parameters of its run. `models:/NAME@ALIAS`, `models:/NAME/VERSION` or `runs:/ID/...`.
    Raises RegistryError when the reference is malformed or the registry cannot answer."""
    _check_ref(ref)
    try:
        return _describe(ref)
    except mlflow.exceptions.MlflowException as exc:
        raise _unknown(ref, exc) from exc


def _check_ref(ref: str) -> None:
    if not re.fullmatch(MODEL_REF, ref):
        raise RegistryError(f"expected a model reference {REF_FORMS}. Got {ref!r}.")


def _unknown(ref: str, exc: BaseException) -> RegistryError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
    return RegistryError(
        f"expected the registry to know {ref} (tracking URI {mlflow.get_tracking_uri()}). "
        f"Got: {first}. `churnwatch models list` shows what it holds; `churnwatch train` "
        "registers a model (CHURNWATCH_DATA_DIR or MLFLOW_TRACKING_URI name another registry)."
    )


def _describe(ref: str) -> dict[str, Any]:
    client = MlflowClient()
    name, version, run_id = MODEL_NAME, "", ""
    if ref.startswith("models:/"):
        body = ref.removeprefix("models:/")
        if "@" in body:
            name, alias = body.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, _, number = body.partition("/")
            mv = client.get_model_version(name, number)
        version, run_id = str(mv.version), mv.run_id or ""
    elif ref.startswith("runs:/"):
        run_id = ref.removeprefix("runs:/").split("/", 1)[0]
    aliases: tuple[str, ...] = ()
    if version:
        model = client.get_registered_model(name)
        aliases = tuple(sorted(a for a, v in model.aliases.items() if str(v) == version))
    run = client.get_run(run_id) if run_id else None
    started = run.info.start_time if run else None
    return {
        "name": name,
        "version": version,
        "aliases": aliases,
        "run_id": run_id,
        "trained_at": (
            pd.Timestamp(started, unit="ms", tz="UTC").isoformat(timespec="seconds")
            if started
            else ""
        ),
        "metrics": dict(run.data.metrics) if run else {},
        "params": dict(run.data.params) if run else {},
    }


def has_artifact(run_id: str, artifact: str) -> bool:
    """Whether the run logged a top-level artifact of that name."""
    return any(f.path == artifact for f in MlflowClient().list_artifacts(run_id))


def read_recipe(meta: dict[str, Any]) -> Recipe:
    """The recipe of a registered model or run (`meta` is `describe`'s answer): its
    `recipe.json`, or, for a run logged before that file existed, its parameters."""
    run_id = str(meta.get("run_id") or "")
    if run_id and has_artifact(run_id, RECIPE):
        with download(run_id, RECIPE) as path:
            return Recipe.from_dict(json.loads(path.read_text()))
    return Recipe.from_params(meta.get("params") or {})


@contextmanager
def download(run_id: str, artifact: str) -> Iterator[Path]:
    """A local copy of one artifact of a run, removed on exit. (Left to itself, MLflow copies
    each download into a new temporary folder it never removes: one per API start, `score`,
    `evaluate` and `monitor`, which piled up in /tmp.)"""
    with tempfile.TemporaryDirectory(prefix="churnwatch-artifact-") as tmp:
        yield Path(mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=artifact, dst_path=tmp
        ))  # fmt: skip


def read_parquet(run_id: str, artifact: str) -> pd.DataFrame:
    """A table logged with a run (the drift reference, for example)."""
    with download(run_id, artifact) as path:
        return pd.read_parquet(path)


def set_aliases(changes: dict[str, str | None]) -> None:
    """Point each alias at a version (or delete it with None), in the order given."""
    client = MlflowClient()
    for alias, version in changes.items():
        if version is None:
            try:
                client.delete_registered_model_alias(MODEL_NAME, alias)
            except mlflow.exceptions.MlflowException:
                pass
        else:
            client.set_registered_model_alias(MODEL_NAME, alias, version)


def promote(version: str) -> str | None:
    """Make `version` the champion: the champion it replaces becomes `previous` (and is
    returned), and `challenger` no longer points at it. A RegistryError names the versions
    there are when `version` is not one of them."""
    newest, aliases = _registered()  # versions and aliases only: no run is read
    known = [str(v.version) for v in newest]
    version = str(version)
    if version not in known:
        raise RegistryError(
            f"expected a registered version of {MODEL_NAME} "
            f"({', '.join(known) or 'none yet: run churnwatch train'}). Got {version!r}."
        )
    current: str | None = next((v for v in known if "champion" in aliases[v]), None)
    if current == version:
        return current
    changes: dict[str, str | None] = {"previous": current} if current else {}
    changes["champion"] = version
    if "challenger" in aliases[version]:
        changes["challenger"] = None
    set_aliases(changes)
    return current


def last_run_of_kind(kind: str) -> dict[str, Any] | None:
    """The newest run tagged `churnwatch.kind=<kind>`: when, parameters, metrics."""
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is None:
        return None
    runs = MlflowClient().search_runs(
        [exp.experiment_id], f"tags.`churnwatch.kind` = '{kind}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )  # fmt: skip
    if not runs:
        return None
    run = runs[0]
    return {
        "run_id": run.info.run_id,
        "at": pd.Timestamp(run.info.start_time, unit="ms", tz="UTC").isoformat(timespec="seconds"),
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
    }


def _registered() -> tuple[list[Any], dict[str, list[str]]]:
    """The registered versions of the model, newest first, and each version's aliases (sorted);
    nothing when none is registered."""
    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name='{MODEL_NAME}'")
    except mlflow.exceptions.MlflowException:
        return [], {}
    if not versions:  # nothing registered yet: the registered model may not exist either
        return [], {}
    by_version: dict[str, list[str]] = {str(v.version): [] for v in versions}
    for alias, version in client.get_registered_model(MODEL_NAME).aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    newest = sorted(versions, key=lambda v: int(v.version), reverse=True)
    return newest, {v: sorted(a) for v, a in by_version.items()}


def list_versions() -> list[dict[str, Any]]:
    """Every registered version of the model, newest first, with aliases and key metrics."""
    versions, aliases = _registered()
    client = MlflowClient()
    out = []
    for v in versions:
        run = client.get_run(v.run_id) if v.run_id else None
        m = run.data.metrics if run else {}
        out.append(
            {
                "version": str(v.version),
                "aliases": aliases[str(v.version)],
                "model": run.data.params.get("model", "") if run else "",
                "created": v.creation_timestamp,
                "test_roc_auc": m.get("test_roc_auc"),
                "test_pr_auc": m.get("test_pr_auc"),
                "test_brier": m.get("test_brier"),
                "run_id": v.run_id,
            }
        )
    return out
