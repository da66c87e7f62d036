"""Ingestion: readers, validation and quarantine, and the Parquet event store."""

from churnwatch.ingest.pipeline import IngestReport, ingest
from churnwatch.ingest.store import EventStore

__all__ = ["EventStore", "IngestReport", "ingest"]
