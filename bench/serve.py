"""Load test of the API on loopback with wrk: `/predict` by features and by user id against a
trivial FastAPI endpoint (the ceiling), in one run, with the server and wrk on separate cores.

    python -m bench --only serve [--runs 3] [--seconds 10]

Each served model (the one `churnwatch train` chooses with its defaults, a random forest and
a LightGBM model, all trained on the built-in simulated log) gets its own server; payloads are
256 real feature rows (the features that model reads) and user ids of that log, drawn at
random by wrk's Lua script, so no answer can be cached. Needs `wrk` (apt-get install wrk).
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 16
KINDS = ("default", "random_forest", "lightgbm")  # default: what `churnwatch train` chooses


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pin(cpu: int) -> list[str]:
    """Run on one core when the machine has two or more (server and wrk apart)."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


def prepare(out: Path, kind: str) -> tuple[Path, pd.DataFrame]:
    """A data dir with a registered `kind` model and its store, and 256 users' latest
    feature rows."""
    from churnwatch.config import Settings
    from churnwatch.features.build import build_snapshots
    from churnwatch.ingest.store import EventStore
    from churnwatch.models.train import TrainConfig
    from churnwatch.runs import run_training
    from churnwatch.simulate import SimConfig, simulate

    log = out / "serve_sim.jsonl.gz"
    if not log.exists():
        simulate(SimConfig(users=500, days=60, seed=0), log)
    data = out / f"serve_{kind}"
    settings = Settings(data_dir=data)
    if not (data / "mlflow.db").exists():
        print(f"training a {kind} model for the load test ...", flush=True)
        config = (
            TrainConfig(n_boot=20)
            if kind == "default"
            else TrainConfig(models=(kind,), n_boot=20, budget_seconds=0)
        )
        run_training(settings=settings, config=config, data=[str(log)])
    table, _ = build_snapshots(EventStore(settings.store_path))
    df = table.to_pandas()
    latest = df[df["cutoff"] == df["cutoff"].max()].drop(columns=["cutoff", "label"])
    return data, latest.sample(min(256, len(latest)), random_state=0)


def payloads(rows: pd.DataFrame, features: list[str]) -> list[str]:
    """`/predict` bodies: each row's values of the served model's `features` (an unknown
    feature is refused, so rows hold only those)."""
    bodies = []
    for rec in rows[features].to_dict("records"):
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in rec.items()}
        bodies.append(json.dumps({"features": clean}, default=float))
    return bodies


def _lua(path: Path, bodies: list[str], url_path: str) -> Path:
    items = ",\n".join(f"[==[{b}]==]" for b in bodies)
    path.write_text(
        "math.randomseed(7)\n"
        f"local bodies = {{\n{items}\n}}\n"
        "request = function()\n"
        "  local b = bodies[math.random(#bodies)]\n"
        f'  return wrk.format("POST", "{url_path}", {{["Content-Type"]="application/json"}}, b)\n'
        "end\n"
    )
    return path


def _start(app: str, env: dict[str, str], cwd: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [*_pin(0), sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
           "--port", str(port), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    url = f"http://127.0.0.1:{port}"
    import httpx

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/ready", timeout=2).status_code in (200, 404):
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"server {app} did not start")


def _unit(text: str) -> float:
    """wrk latency ('812.00us', '8.12ms', '1.02s') in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    assert m, text
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]
    return float(m.group(1)) * scale


def wrk(url: str, seconds: int, script: Path | None = None) -> dict[str, float]:
    cmd = [*_pin(1), "wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", out, flags=re.M))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50_ms": _unit(lat["50"]),
        "p99_ms": _unit(lat["99"]),
        "non_2xx": float(bad.group(1)) if bad else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def measure(
    label: str, url: str, runs: int, seconds: int, script: Path | None = None
) -> dict[str, Any]:
    wrk(url, 2, script)  # warm up
    results = [wrk(url, seconds, script) for _ in range(runs)]
    row = {
        "task": f"serve {label}",
        "runs": runs,
        "connections": CONNECTIONS,
        "rps": statistics.median(r["rps"] for r in results),
        "p50_ms": statistics.median(r["p50_ms"] for r in results),
        "p99_ms": statistics.median(r["p99_ms"] for r in results),
        "non_2xx": sum(r["non_2xx"] for r in results),
    }
    print(
        f"{row['task']:44s} {row['rps']:8.0f} req/s  p50 {row['p50_ms']:6.2f} ms  "
        f"p99 {row['p99_ms']:6.2f} ms  non-2xx {row['non_2xx']:.0f}",
        flush=True,
    )
    return row


def bench_serve(out: Path, runs: int, seconds: int) -> list[dict[str, Any]]:
    if not shutil.which("wrk"):
        raise SystemExit("the serving benchmark needs wrk: apt-get install wrk")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    rows: list[dict[str, Any]] = []
    proc, url = _start("bench.trivial_app:app", env, ROOT)
    try:
        ceiling = measure("trivial FastAPI GET", url + "/ping", runs, seconds)
    finally:
        proc.terminate()
        proc.wait()
    rows.append(ceiling)
    for kind in KINDS:
        data, sample = prepare(out, kind)
        proc, url = _start("app:app", {**env, "CHURNWATCH_DATA_DIR": str(data)}, ROOT)
        try:
            import httpx

            served = httpx.get(url + "/model").json()
            bodies = payloads(sample, served["features"])
            print(f"{kind}: serving {served['kind']} on {len(served['features'])} features")
            feats = _lua(out / f"features_{kind}.lua", bodies, "/predict")
            plain = _lua(out / f"features_plain_{kind}.lua", bodies, "/predict?explain=false")
            ranked = httpx.get(url + "/users/at-risk", params={"limit": 256}).json()["users"]
            users = [json.dumps({"user_id": u["user_id"]}) for u in ranked]
            by_user = _lua(out / f"users_{kind}.lua", users, "/predict")
            for label, path, script in [
                ("/health", "/health", None),
                ("/predict features+reasons", "/predict", feats),
                ("/predict features, no reasons", "/predict", plain),
                ("/predict user_id+reasons", "/predict", by_user),
            ]:
                row = measure(f"{kind} {label}", url + path, runs, seconds, script)
                row["model"] = served["kind"]
                row["features"] = len(served["features"])
                row["vs_trivial"] = row["rps"] / ceiling["rps"]
                rows.append(row)
        finally:
            proc.terminate()
            proc.wait()
    return rows
