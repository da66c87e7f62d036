"""Point-in-time features and labels: one SQL definition, run on DuckDB or Spark."""

from churnwatch.features.build import SnapshotReport, build_snapshots
from churnwatch.features.catalog import Feature, catalog, feature_names

__all__ = ["Feature", "SnapshotReport", "build_snapshots", "catalog", "feature_names"]
