"""Heavy or optional libraries, each imported here and nowhere else, on first use.

shap, xgboost and lightgbm cost about a second each to import (lifetimes, for the BG/NBD
baseline, pulls in autograd), and a process that never fits
or explains a tree model (ingest, the rate rule's API) should not pay for them; pyspark is an
extra (`churnwatch[spark]`) that most installs do not have. Everything else is imported at the
top of the module that uses it.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace

from churnwatch.errors import ConfigError


def shap() -> ModuleType:
    import shap as module

    return module  # type: ignore[no-any-return]  # shap ships no type information


def xgboost() -> ModuleType:
    import xgboost as module

    return module


def lightgbm() -> ModuleType:
    import lightgbm as module

    return module


def pyspark() -> SimpleNamespace:
    """SparkSession, SparkFiles and the SQL functions and types modules."""
    try:
        from pyspark import SparkFiles
        from pyspark.sql import SparkSession, functions, types
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "--engine spark needs pyspark: pip install 'churnwatch[spark]' (and Java 17)"
        ) from exc
    return SimpleNamespace(
        SparkSession=SparkSession, SparkFiles=SparkFiles, functions=functions, types=types
    )


def lifetimes() -> ModuleType:
    import lifetimes as module

    return module  # type: ignore[no-any-return]  # lifetimes ships no type information
