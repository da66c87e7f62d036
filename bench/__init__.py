"""churnwatch benchmarks: `python -m bench --help`. Results go to BENCHMARKS.md by hand."""
