"""churnwatch benchmarks: `python -m bench --help`. Results go to BENCHMARKS.md by hand."""

from pathlib import Path

# the eventsim development logs, read where they are (../shared beside the repository)
EVENTSIM_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "eventsim"
