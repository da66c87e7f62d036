"""The two engines that run the feature SQL: DuckDB (default, embedded) and Spark.

Each engine does three engine-specific things only: expose the store's events as view `ev`
(with `ts_us` and `day`), register the `cutoffs` and `params` tables, and run a SELECT. All
feature logic lives in `churnwatch.features.sql`, transpiled by sqlglot for Spark.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
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
        if (master or "local").startswith("local"):
            # Python workers (batch scoring's UDFs) run in this interpreter's environment;
            # PySpark reads the variable when the context starts
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        for key, value in {**defaults, **(conf or {})}.items():
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
