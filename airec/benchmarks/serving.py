"""`airec bench serving`: how much a training run slows recommendations down.

Starts a real gunicorn on 127.0.0.1 with its own temporary database and model folder, ingests a
synthetic planted dataset, trains a first model, then measures POST /api/v1/recommendations (and
/healthz for a throughput ratio) twice: idle, and while a training run is in flight. Request counts
and time are bounded; everything started is stopped.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from airec.benchmarks.server import Gunicorn, planted_records


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def load(
    server: Gunicorn,
    *,
    path: str,
    body_for,
    requests_total: int,
    concurrency: int,
    max_seconds: float,
    while_running=None,
) -> dict:
    """Send up to `requests_total` requests with `concurrency` keep-alive clients; latency in ms."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    deadline = time.monotonic() + max_seconds
    per_client = max(1, requests_total // concurrency)

    def client(seed: int) -> None:
        nonlocal errors
        rng = random.Random(seed)
        session = requests.Session()
        for _ in range(per_client):
            if time.monotonic() > deadline or (while_running is not None and not while_running()):
                break
            body = body_for(rng)
            started = time.perf_counter()
            try:
                if body is None:
                    ok = session.get(server.url + path, timeout=30).status_code == 200
                else:
                    ok = session.post(server.url + path, json=body, timeout=30).status_code == 200
            except requests.RequestException:
                ok = False
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                if ok:
                    latencies.append(elapsed)
                else:
                    errors += 1
        session.close()

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(client, range(concurrency)))
    wall = time.perf_counter() - started
    return {
        "n": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall if wall > 0 else float("nan"),
        "p50": _percentile(latencies, 50),
        "p99": _percentile(latencies, 99),
        "mean": statistics.fmean(latencies) if latencies else float("nan"),
    }


def run(args: argparse.Namespace) -> dict:
    groups, group_size = 20, 10

    def recommend_body(rng: random.Random) -> dict:
        group = rng.randrange(groups)
        return {"items": [f"g{group}-i{i}" for i in rng.sample(range(group_size), 3)], "k": 10}

    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="airec-bench-") as tmp:
        env = {"AIREC_MODEL_POLL_SECONDS": "1", "AIREC_TRAIN_THREADS": str(args.train_threads)}
        with Gunicorn(Path(tmp), workers=args.workers, env=env) as server:
            records = planted_records(users=args.users, groups=groups, group_size=group_size, per_user=5)
            for start in range(0, len(records), 5000):
                batch = {"records": records[start : start + 5000]}
                server.post("/api/v1/interactions", json=batch).raise_for_status()
            first = server.post("/api/v1/training", json={"algorithm": "itemknn"}).json()["run"]
            if server.wait_run(first["id"])["status"] != "succeeded":
                raise RuntimeError("the first training run failed")
            time.sleep(1.5)  # every worker has loaded the model
            common = {"requests_total": args.requests, "concurrency": args.concurrency}
            load(server, path="/api/v1/recommendations", body_for=recommend_body, requests_total=100,
                 concurrency=args.concurrency, max_seconds=10)  # fmt: skip  (warm-up)
            results["idle"] = load(
                server, path="/api/v1/recommendations", body_for=recommend_body,
                max_seconds=args.max_seconds, **common,
            )  # fmt: skip
            results["healthz"] = load(
                server, path="/healthz", body_for=lambda rng: None, max_seconds=args.max_seconds, **common
            )
            params = {"epochs": args.train_epochs, "patience": args.train_epochs, "hidden": 256}
            response = server.post("/api/v1/training", json={"algorithm": "autoencoder", "params": params})
            run_id = response.json()["run"]["id"]
            in_flight = threading.Event()
            in_flight.set()

            def watch() -> None:
                while in_flight.is_set():
                    status = server.get(f"/api/v1/training/runs/{run_id}").json()["run"]["status"]
                    if status in ("succeeded", "failed"):
                        in_flight.clear()
                    time.sleep(0.25)

            threading.Thread(target=watch, daemon=True).start()
            time.sleep(0.5)  # data loaded, epochs under way
            results["training"] = load(
                server, path="/api/v1/recommendations", body_for=recommend_body,
                max_seconds=args.max_seconds, while_running=in_flight.is_set, **common,
            )  # fmt: skip
            results["training_still_running_at_end"] = in_flight.is_set()
            in_flight.clear()
            server.wait_run(run_id, timeout=600)
    return results


def format_table(results: dict, args: argparse.Namespace) -> str:
    idle, busy, health = results["idle"], results["training"], results["healthz"]
    lines = [
        f"serving benchmark: gunicorn {args.workers} workers x 4 threads on 127.0.0.1, {args.users} users, "
        f"{args.concurrency} clients, up to {args.requests} requests per phase",
        f"{'phase':<34}{'requests':>9}{'errors':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}",
    ]
    for name, row in (
        ("POST /recommendations, idle", idle),
        ("POST /recommendations, training", busy),
        ("GET /healthz, idle", health),
    ):
        lines.append(
            f"{name:<34}{row['n']:>9}{row['errors']:>8}{row['rps']:>9.1f}{row['p50']:>9.2f}{row['p99']:>9.2f}"
        )
    rise, extra, slower = busy["p99"] / idle["p99"], busy["p99"] - idle["p99"], busy["rps"] / idle["rps"]
    lines.append(f"p99 rise while training: x{rise:.2f} (+{extra:.1f} ms); throughput x{slower:.2f}")
    lines.append(f"/recommendations vs /healthz throughput (idle): {idle['rps'] / health['rps']:.2f}")
    if not results.get("training_still_running_at_end"):
        lines.append("note: the training run ended before the load phase did; its tail ran idle")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airec bench serving", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4, help="parallel keep-alive clients")
    parser.add_argument("--requests", type=int, default=1500, help="requests per phase (upper bound)")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="time bound per phase")
    parser.add_argument("--users", type=int, default=3000, help="synthetic users to ingest")
    parser.add_argument("--train-epochs", type=int, default=200, help="epochs of the background run")
    parser.add_argument("--train-threads", type=int, default=1, help="AIREC_TRAIN_THREADS for the server")
    args = parser.parse_args(argv)
    print(format_table(run(args), args))
    return 0
