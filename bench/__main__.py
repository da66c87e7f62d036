"""Run the benchmarks: several runs of each task in fresh subprocesses, medians and ratios.

    python -m bench quality [--n-boot 300]   (model quality: see bench/quality.py)
    python -m bench plan [--n-boot 1000]     (retention plan: see bench/plan.py)
    python -m bench survival                 (risk at any horizon: see bench/survival.py)
    python -m bench [--runs 3]
                    [--only ingest|ingest-files|simulate|snapshots|train|cdnow|drift|serve]
                    [--big] [--out bench/results]

Figures: wall seconds, events per second, peak RSS of the task's process (from wait4).
The default data: the eventsim dev log from ../shared (when present) and simulated logs of 1.8M
events (ingest) and 2.5M events (snapshots), written once into the output folder. `--big` adds
the 26M-event simulated log.
`cdnow` trains on the public CDNOW purchase log that ships with `lifetimes`, written as CSV.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from bench import EVENTSIM_DIR

ROOT = Path(__file__).resolve().parents[1]
EVENTSIM = EVENTSIM_DIR / "sparkify_like_accordion_seed101.jsonl.gz"


def run_task(name: str, *args: str) -> dict[str, Any]:
    """Run one task in a subprocess; add the peak RSS of its whole process tree (bytes),
    sampled every 50 ms (so a JVM started by Spark counts too)."""
    import psutil

    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.tasks", name, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        root = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            done.wait(0.05)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    out = proc.stdout.read() if proc.stdout else ""
    status = proc.wait()
    done.set()
    watcher.join()
    if status != 0:
        raise SystemExit(f"benchmark task {name} failed with status {status}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    result["peak_rss"] = peak[0]
    return result


def measure(name: str, args: list[str], runs: int) -> dict[str, Any]:
    results = [run_task(name, *args) for _ in range(runs)]
    seconds = [r["seconds"] for r in results]
    med = statistics.median(seconds)
    events = results[0].get("events", 0)
    summary: dict[str, Any] = {
        "task": name,
        "args": args,
        "runs": runs,
        "median_s": med,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "events": events,
        "events_per_s": events / med if med else 0.0,
        "peak_rss_mb": max(r["peak_rss"] for r in results) / 2**20,
    }
    for key, value in results[0].items():  # a task's other figures: parts timed, sizes
        if key.endswith("_seconds"):  # raw to snapshots: the ingest part, ...
            summary[f"median_{key.removesuffix('_seconds')}_s"] = statistics.median(
                r[key] for r in results
            )
        elif key not in ("seconds", "events", "peak_rss"):
            summary.setdefault(key, value)
    print(
        f"{name:24s} {Path(args[0]).name if args else '':36s} median {med:8.2f} s  "
        f"{summary['events_per_s']:>12,.0f} ev/s  peak {summary['peak_rss_mb']:7.0f} MB",
        flush=True,
    )
    return summary


def ensure_sim(out: Path, users: int, days: int) -> Path:
    path = out / f"sim_{users}u_{days}d.jsonl.gz"
    if not path.exists():
        print(f"writing {path} ...", flush=True)
        run_task("simulate_log", str(users), str(days), str(path))
    return path


def ensure_store(out: Path, log: Path) -> Path:
    """An ingested store for `log` (made once, not timed)."""
    from churnwatch.config import Settings
    from churnwatch.ingest import ingest

    store = out / f"store_{log.name.split('.')[0]}"
    if not (store / "_manifest.json").exists():
        shutil.rmtree(store, ignore_errors=True)
        print(f"ingesting {log.name} into {store} ...", flush=True)
        ingest([log], settings=Settings(store_dir=store))
    return store


def cdnow_csv(out: Path) -> Path:
    """CDNOW as the CSV a retention team would export (comma-separated, CRLF)."""
    from importlib import resources

    path = out / "cdnow.csv"
    if not path.exists():
        text = resources.files("lifetimes.datasets").joinpath("CDNOW_master.txt").read_text()
        rows = [",".join(line.split()) for line in text.splitlines() if line.strip()]
        path.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    return path


def bench_ingest(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Ingest against DuckDB's bare JSON reader and pandas on the same file in the same run,
    then raw log to snapshot table; the 1.8M-event log is the size issue #14 was measured on."""
    rows: list[dict[str, Any]] = []
    logs = [EVENTSIM] if EVENTSIM.is_file() else []
    logs.append(ensure_sim(args.out, 1300, 60))
    for log in logs:
        churn = measure("ingest_churnwatch", [str(log)], args.runs)
        native = measure("ingest_duckdb_native", [str(log)], args.runs)
        inflate = measure("decompress_only", [str(log)], args.runs)
        lines = measure("ingest_duckdb_lines", [str(log)], args.runs)
        extract = measure("ingest_duckdb_extract", [str(log)], args.runs)
        arrow = measure("ingest_pyarrow_json", [str(log)], args.runs)
        end = measure("raw_to_snapshots", [str(log)], args.runs)
        pandas = measure("ingest_pandas", [str(log)], args.runs)  # last: it takes 8 GB
        churn["vs_duckdb_native"] = native["median_s"] / churn["median_s"]
        churn["vs_pandas"] = pandas["median_s"] / churn["median_s"]
        for floor in (inflate, lines, extract, arrow):
            floor["vs_duckdb_native"] = native["median_s"] / floor["median_s"]
        print(
            f"  churnwatch ingest speed vs duckdb bare read_json {churn['vs_duckdb_native']:.2f}x, "
            f"vs pandas {churn['vs_pandas']:.2f}x; gzip decompression alone "
            f"{inflate['vs_duckdb_native']:.2f}x, duckdb copying raw lines "
            f"{lines['vs_duckdb_native']:.2f}x and extracting fields from them "
            f"{extract['vs_duckdb_native']:.2f}x its bare read_json, pyarrow's JSON reader "
            f"{arrow['vs_duckdb_native']:.2f}x; raw to snapshots "
            f"{end['events_per_s']:,.0f} ev/s, peak {end['peak_rss_mb']:.0f} MB",
            flush=True,
        )
        rows += [churn, native, inflate, lines, extract, arrow, pandas, end]
    if args.big:
        big = str(ensure_sim(args.out, 18000, 60))
        rows += [measure("ingest_churnwatch", [big], 1), measure("raw_to_snapshots", [big], 1)]
    return rows


def split_log(out: Path, log: Path, parts: int) -> tuple[Path, Path]:
    """`log` as one plain JSON-lines file and as `parts` files of consecutive lines (a
    stream's per-minute dumps), written once."""
    import gzip

    one = out / f"{log.name.split('.')[0]}.jsonl"
    folder = out / f"{log.name.split('.')[0]}_{parts}_files"
    if not one.exists():
        with gzip.open(log, "rb") as fh:
            one.write_bytes(fh.read())
    if not folder.is_dir():
        lines = one.read_bytes().splitlines(keepends=True)
        step = -(-len(lines) // parts)
        tmp = folder.with_suffix(".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for k in range(parts):
            (tmp / f"part-{k:05d}.json").write_bytes(b"".join(lines[k * step : (k + 1) * step]))
        tmp.rename(folder)
    return one, folder


def bench_ingest_files(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The same log as one file and as 2,000 small files, in the same run."""
    if not EVENTSIM.is_file():
        return []
    one, folder = split_log(args.out, EVENTSIM, 2000)
    single = measure("ingest_churnwatch", [str(one)], args.runs)
    many = measure("ingest_churnwatch", [str(folder)], args.runs)
    many["vs_one_file"] = single["median_s"] / many["median_s"]
    print(f"  2,000 files at {many['vs_one_file']:.2f}x the speed of one file", flush=True)
    return [single, many]


def bench_snapshots(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    logs = [EVENTSIM] if EVENTSIM.is_file() else []
    logs.append(ensure_sim(args.out, 1700, 60))
    for log in logs:
        store = str(ensure_store(args.out, log))
        duck = measure("snapshots_duckdb", [store], args.runs)
        spark = measure("snapshots_spark", [store], args.runs)
        duck["vs_spark"] = spark["median_s"] / duck["median_s"]
        line = f"  duckdb vs spark local[2] {duck['vs_spark']:.1f}x"
        rows += [duck, spark]
        if "1700u" in log.name:
            pandas = measure("snapshots_pandas", [store], args.runs)
            duck["vs_pandas"] = pandas["median_s"] / duck["median_s"]
            line += f", vs pandas {duck['vs_pandas']:.1f}x"
            rows.append(pandas)
        print(line, flush=True)
    if args.big:
        big = ensure_sim(args.out, 18000, 60)
        store = str(ensure_store(args.out, big))
        rows.append(measure("snapshots_duckdb", [store], args.runs))
        rows.append(measure("snapshots_spark", [store], 1))
    return rows


def drift_frames(out: Path) -> Path:
    """The eventsim dev log's snapshots as `monitor` compares them: the last three weekly
    cutoffs before the latest (the reference) and the latest (current), with a score (the
    risky-page rate, ranked), written once."""
    from churnwatch.features import build_snapshots
    from churnwatch.ingest import EventStore

    folder = out / "drift_frames"
    if not (folder / "current.parquet").exists():
        table, _ = build_snapshots(EventStore(ensure_store(out, EVENTSIM)))
        frame = table.to_pandas()
        frame["score"] = frame["thumbs_down_per_day_28d"].rank(pct=True)
        cutoffs = sorted(frame["cutoff"].unique())
        folder.mkdir(parents=True, exist_ok=True)
        frame[frame["cutoff"].isin(cutoffs[-4:-1])].to_parquet(folder / "reference.parquet")
        frame[frame["cutoff"] == cutoffs[-1]].to_parquet(folder / "current.parquet")
        print(f"wrote {folder}: {len(frame):,} snapshot rows", flush=True)
    return folder


def bench_drift(args: argparse.Namespace) -> list[dict[str, Any]]:
    """churnwatch's drift check against Evidently's preset on the same frames."""
    if not EVENTSIM.is_file():
        return []
    frames = str(drift_frames(args.out))
    ours = measure("drift_churnwatch", [frames], args.runs)
    preset = measure("drift_evidently_preset", [frames], args.runs)
    ours["vs_preset"] = preset["median_s"] / ours["median_s"]
    ours["check_vs_preset"] = preset["median_check_s"] / ours["median_check_s"]
    print(
        f"  drift check and report {ours['vs_preset']:.1f}x the preset's speed "
        f"(check alone {ours['check_vs_preset']:.1f}x)",
        flush=True,
    )
    return [ours, preset]


def main() -> None:
    if sys.argv[1:2] == ["survival"]:
        from bench import survival

        survival.main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["plan"]:
        from bench import plan

        plan.main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["quality"]:
        from bench import quality

        quality.main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--only",
        choices=("ingest ingest-files simulate snapshots train cdnow drift serve").split(),
        default=None,
    )
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per serving run")
    parser.add_argument("--big", action="store_true", help="add the 26M-event log")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if args.only in (None, "simulate"):
        target = args.out / "sim_speed.jsonl.gz"
        users, days = (18000, 60) if args.big else (2000, 60)
        rows.append(measure("simulate_log", [str(users), str(days), str(target)], args.runs))
        target.unlink(missing_ok=True)
    if args.only in (None, "ingest"):
        rows += bench_ingest(args)
    if args.only in (None, "ingest-files"):
        rows += bench_ingest_files(args)
    if args.only in (None, "snapshots"):
        rows += bench_snapshots(args)
    if args.only in (None, "train") and EVENTSIM.is_file():
        rows.append(measure("train_models", [str(EVENTSIM)], args.runs))
    if args.only in (None, "cdnow"):
        rows.append(measure("train_cdnow", [str(cdnow_csv(args.out))], args.runs))
    if args.only in (None, "drift"):
        rows += bench_drift(args)
    if args.only in (None, "serve"):
        from bench.serve import bench_serve

        rows += bench_serve(args.out, args.runs, args.seconds)
    name = "results.json" if args.only is None else f"results_{args.only}.json"
    (args.out / name).write_text(json.dumps(rows, indent=1))
    print(f"results: {args.out / name}")


if __name__ == "__main__":
    main()
