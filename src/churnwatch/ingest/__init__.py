"""Ingestion: readers, validation and quarantine, and the Parquet event store."""

from churnwatch.ingest.pipeline import IngestReport, connect, ingest
from churnwatch.ingest.store import EventStore

__all__ = ["EventStore", "IngestReport", "connect", "ingest"]
