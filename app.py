"""`uvicorn app:app` from the repository root serves the churnwatch API (settings from
CHURNWATCH_* environment variables); `churnwatch serve` does the same with options."""

from churnwatch.serving.app import create_app

app = create_app()
