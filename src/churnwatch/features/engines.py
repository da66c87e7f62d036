"""The two engines that run the feature SQL: DuckDB (default, embedded) and Spark.

Each engine does three engine-specific things only: expose the store's events as view `ev`
(with `ts_us` and `day`), register the `cutoffs` and `params` tables, and run a SELECT. All
feature logic lives in `churnwatch.features.sql`, transpiled by sqlglot for Spark.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from typing import Any, Protocol

import pyarrow as pa
import sqlglot

from churnwatch import optional
from churnwatch.config import Settings
from churnwatch.db import connect, event_files, literal
from churnwatch.errors import ConfigError, StoreError
from churnwatch.ingest.store import EventStore
from churnwatch.labels import US_PER_DAY

log = logging.getLogger(__name__)

EV_COLUMNS = (
    "user_id, session_id, page, level, gender, artist, length, location, user_agent, "
    "item_in_session"
)


def _extra(columns: tuple[str, ...]) -> str:
    """Columns beyond eventsim's that a catalog reads (a log's value column)."""
    return "".join(f", {c}" for c in columns)


class Engine(Protocol):
    """What build_snapshots needs of an engine."""

    name: str

    def load_events(
        self, files: list[str], *, until_us: int | None = None, extra: tuple[str, ...] = ()
    ) -> None: ...

    def register(self, name: str, table: pa.Table) -> None: ...

    def materialise(self, name: str, sql: str) -> None: ...

    def query(self, sql: str) -> pa.Table: ...

    def close(self) -> None: ...


class DuckDBEngine:
    """Features on DuckDB, in process."""

    name = "duckdb"

    def __init__(self, settings: Settings) -> None:
        self.con = connect(settings)
        self._spill = tempfile.TemporaryDirectory(prefix="churnwatch-duckdb-")
        self.con.execute(f"SET temp_directory = {literal(self._spill.name)}")

    def load_events(
        self, files: list[str], *, until_us: int | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        self.con.execute(
            f"""CREATE OR REPLACE TEMP VIEW ev AS
            SELECT {EV_COLUMNS}{_extra(extra)},
                   epoch_us(ts) AS ts_us,
                   CAST(floor(epoch_us(ts) / {US_PER_DAY}) AS BIGINT) AS day,
                   epoch_us(registration) AS registration_us
            FROM {event_files(files)}
            {_until(until_us, "epoch_us(ts)")}"""
        )

    def register(self, name: str, table: pa.Table) -> None:
        self.con.register(f"{name}_arrow", table)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {name}_arrow")
        self.con.unregister(f"{name}_arrow")

    def materialise(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def query(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def close(self) -> None:
        self.con.close()
        self._spill.cleanup()


class SparkEngine:
    """Features on Spark: a local session by default, any cluster through `master`."""

    name = "spark"

    def __init__(self, master: str | None = None, conf: dict[str, str] | None = None) -> None:
        builder = optional.pyspark().SparkSession.builder.appName("churnwatch")
        # under spark-submit (which starts the JVM and sets PYSPARK_GATEWAY_PORT) the master
        # comes from spark-submit; otherwise an explicit master, or a local session
        master = master or os.environ.get("CHURNWATCH_SPARK_MASTER")
        if master or "PYSPARK_GATEWAY_PORT" not in os.environ:
            builder = builder.master(master or "local[*]")
        defaults = {
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.shuffle.partitions": "8",
            "spark.driver.memory": "2g",
        }
        merged = {**defaults, **(conf or {})}
        if merged.get("spark.pyspark.python"):
            # the executors' Python for UDFs (batch scoring). Started from Python rather than
            # spark-submit, PySpark takes it from PYSPARK_PYTHON alone, read when the context
            # starts; the setting would be ignored and the nodes' `python3` run instead
            os.environ["PYSPARK_PYTHON"] = merged["spark.pyspark.python"]
        elif (master or "local").startswith("local"):
            # Python workers run in this interpreter's environment
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in merged.items():
            builder = builder.config(key, value)
        try:
            self.spark = builder.getOrCreate()
        except Exception as exc:  # Java missing or the cluster unreachable
            raise ConfigError(f"could not start Spark (is Java 17 installed?): {exc}") from exc
        self.spark.sparkContext.setLogLevel("ERROR")

    def load_events(
        self, files: list[str], *, until_us: int | None = None, extra: tuple[str, ...] = ()
    ) -> None:
        # stores written before the value column existed mix schemas: merge them by name
        reader = self.spark.read.option("mergeSchema", "true")
        reader.parquet(*files).createOrReplaceTempView("ev_raw")
        self.spark.sql(
            f"""SELECT {EV_COLUMNS}{_extra(extra)},
                   unix_micros(ts) AS ts_us,
                   CAST(floor(unix_micros(ts) / {US_PER_DAY}) AS BIGINT) AS day,
                   unix_micros(registration) AS registration_us
            FROM ev_raw {_until(until_us, "unix_micros(ts)")}"""
        ).createOrReplaceTempView("ev")

    def register(self, name: str, table: pa.Table) -> None:
        self.spark.createDataFrame(table.to_pandas()).createOrReplaceTempView(name)

    def materialise(self, name: str, sql: str) -> None:
        df = self.spark.sql(to_spark(sql)).cache()
        df.createOrReplaceTempView(name)

    def query(self, sql: str) -> pa.Table:
        df = self.spark.sql(to_spark(sql))
        return df.toArrow()

    def frame(self, sql: str) -> Any:
        """The query as a Spark DataFrame, left on the cluster (batch scoring uses it)."""
        return self.spark.sql(to_spark(sql))

    def close(self) -> None:
        """Local sessions are kept for reuse (they take seconds to start)."""

    def check_python(self, modules: Sequence[str], compare: Sequence[str] = ()) -> None:
        """Before Python UDFs run: that the executors' Python starts, imports `modules`, and
        has this interpreter's version (ConfigError, saying what to set, when not). A module
        of `compare` whose version differs from the driver's is a warning: a model pickled
        by one version may load or score differently on another. On a cluster whose nodes lack
        churnwatch's environment, the UDF would fail in every task, four times, with a worker
        traceback ending in "No module named 'pandas'"."""
        sc = self.spark.sparkContext
        wanted = tuple(dict.fromkeys((*modules, *compare)))

        def probe(_: int) -> dict[str, Any]:  # pickled by value: runs without churnwatch
            import importlib
            import sys as executor

            found: dict[str, Any] = {"python": list(executor.version_info[:2]),
                                     "executable": executor.executable, "missing": {},
                                     "versions": {}}  # fmt: skip
            for name in wanted:
                try:
                    found["versions"][name] = getattr(importlib.import_module(name),
                                                      "__version__", "")  # fmt: skip
                except Exception as exc:  # noqa: BLE001  # reported to the driver
                    found["missing"][name] = f"{type(exc).__name__}: {exc}"
            return found

        fix = (
            "Give the executors a Python with churnwatch installed (`pip install "
            "'churnwatch[spark]'`, the versions in requirements.txt): --spark-conf "
            "spark.pyspark.python=PATH with the same PATH on every node, or a packed "
            "environment shipped with spark.archives (see the README)."
        )
        here = f"Python {sys.version_info[0]}.{sys.version_info[1]}"
        try:
            found = sc.parallelize([0], 1).map(probe).collect()[0]
        except Exception as exc:  # the Python does not start, or is another version
            raise ConfigError(
                f"expected the Spark executors to run Python code with {sc.pythonExec} "
                f"({here}, as the driver). Got: {_spark_error(exc)}. {fix}"
            ) from exc
        missing = {m: e for m, e in found["missing"].items() if m in modules}
        if missing:
            said = "; ".join(f"{m}: {e}" for m, e in missing.items())
            raise ConfigError(
                f"expected the Spark executors' Python ({found['executable']}) to import "
                f"{', '.join(modules)}. Got {said}. {fix}"
            )
        for name in compare:
            theirs = found["versions"].get(name)
            mine = getattr(sys.modules.get(name), "__version__", None)
            if theirs is not None and mine is not None and theirs != mine:
                log.warning("the Spark executors run %s %s, the driver %s: a model pickled by "
                            "one version may load or score differently on the other",
                            name, theirs, mine)  # fmt: skip


def _spark_error(exc: BaseException) -> str:
    """What a failed Spark job says of its cause: the first error it names that is not a
    wrapper (the JVM's "Job aborted", py4j's "An error occurred while calling"), such as the
    executor's "java.io.IOException: Cannot run program ..." or a Python worker's error."""
    wrappers = ("Py4JJavaError", "SparkException", "PythonException")
    # the rest of the line is looked ahead at, not consumed: a wrapper's line may end in
    # the cause ("Job aborted ...: java.io.IOException: Cannot run program ...")
    for match in re.finditer(r"([A-Za-z_][\w.]*(?:Error|Exception)): (?=([^\n]+))", str(exc)):
        if not match.group(1).endswith(wrappers):
            return f"{match.group(1)}: {match.group(2).strip().rstrip('.')}"[:500]
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:500]


def _until(until_us: int | None, ts_us: str) -> str:
    """A WHERE clause keeping events before `until_us` (an int, so safe to write out)."""
    return "" if until_us is None else f"WHERE {ts_us} < {int(until_us)}"


def to_spark(sql: str) -> str:
    """Transpile one DuckDB SELECT to Spark SQL."""
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def make_engine(name: str, settings: Settings, **spark: Any) -> DuckDBEngine | SparkEngine:
    if name == "duckdb":
        return DuckDBEngine(settings)
    if name == "spark":
        return SparkEngine(**spark)
    raise ConfigError(f"engine has to be one of 'duckdb', 'spark'. Got {name!r} instead.")


def store_files(store: EventStore) -> list[str]:
    store.require()
    files = store.files("events")
    if not files:
        raise StoreError(f"the store {store.root} holds no events")
    return files
