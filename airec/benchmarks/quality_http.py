"""`airec bench service`'s default engine, the real service: gunicorn with API keys on and a fresh
database, the received units POSTed, a training run with `{}`, then every held-out unit asked for its
top 100 by QUERY_CLIENTS clients at once."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import requests

from airec.auth.roles import KEY_ROLES, Role
from airec.benchmarks.server import Gunicorn
from airec.config import Settings
from airec.recsys.datasets import Dataset
from airec.recsys.holdout import Holdout, metrics_of_scores, ranked_scores
from airec.training.status import FINISHED, RunStatus

POST_BATCH = 5000
QUERY_CLIENTS = 4


@dataclass
class ServiceRun:
    """What the service did with one case."""

    metrics: dict
    algorithm: str
    train_seconds: float
    peak_rss_mb: float | None
    manifest: dict


def records(ds: Dataset, holdout: Holdout, shape: str) -> list[dict]:
    """The received units as API records, in dataset (canonical) order. A user with more items than
    one record takes (AIREC_MAX_ITEMS_PER_RECORD) is sent as several records, as a client must."""
    X = holdout.X
    cap = Settings.max_items_per_record
    out = []
    for row in holdout.received:
        items = [ds.items[j] for j in X.indices[X.indptr[row] : X.indptr[row + 1]]]
        if ds.kind == "baskets" and shape != "order":
            out.append({"items": items})
            continue
        user = str(ds.units[row]) if ds.kind != "baskets" else f"order-{ds.units[row]}"
        out.extend({"user": user, "items": items[i : i + cap]} for i in range(0, len(items), cap))
    return out


def cli(env: dict, *args: str) -> str:
    """`airec <args>` against the service's database (`env`), e.g. to create a key: its output."""
    done = subprocess.run(
        [sys.executable, "-m", "airec.cli", *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants (Linux /proc), in MB. A child is listed
    under the thread that started it while that thread lives (a fit's process under its training
    thread), so every thread's list is read."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
            children = [
                c
                for task in Path(f"/proc/{current}/task").iterdir()
                for c in (task / "children").read_text().split()
            ]
        except (OSError, StopIteration):
            continue
        stack.extend(int(c) for c in children)
    return total / 1024


def run_http(
    ds: Dataset,
    holdout: Holdout,
    shape: str,
    *,
    env: dict[str, str],
    workers: int,
    log: Callable[[str], None],
) -> ServiceRun:
    """POST, train with `{}`, query: the real gunicorn service with API keys on."""
    with tempfile.TemporaryDirectory(prefix="airec-bench-service-") as tmp:
        service_env = {
            **os.environ,
            "AIREC_DATABASE_URL": f"sqlite:///{tmp}/airec.db",
            "AIREC_MODELS_DIR": f"{tmp}/models",
            "AIREC_LOG_LEVEL": "WARNING",
            **env,
        }
        keys = {
            role: cli(service_env, "keys", "create", "--role", role, "--name", role) for role in KEY_ROLES
        }
        server_env = {"AIREC_AUTH": "true", **env}
        with Gunicorn(
            tmp,
            workers=workers,
            env=server_env,
            database_url=service_env["AIREC_DATABASE_URL"],
            startup_timeout=120,
        ) as server:
            call = caller(server.url, keys)
            body = records(ds, holdout, shape)
            started = time.perf_counter()
            for start in range(0, len(body), POST_BATCH):
                chunk = body[start : start + POST_BATCH]
                call("POST", "/api/v1/interactions", Role.INGEST, json={"records": chunk})
            log(f"    posted {len(body)} records in {time.perf_counter() - started:.0f} s")
            run, seconds, peak = train_run(call, server.process.pid)
            version = call("GET", f"/api/v1/models/{run['model_version']}", Role.ADMIN).json()
            log(f"    trained {version['algorithm']} in {seconds:.0f} s (peak RSS {peak:.0f} MB)")
            ranked = _query(server.url, keys[Role.READ], ds, holdout, version=run["model_version"])
    metrics = metrics_of_scores(
        ranked_scores(ranked, holdout.X.shape[1]), holdout.test_input, holdout.test_hidden
    )
    return ServiceRun(metrics, version["algorithm"], seconds, peak, version)


def caller(url: str, keys: dict[str, str]) -> Callable[..., requests.Response]:
    """call(method, path, role, **kwargs): one session, the role's key, an error raised with the
    answer's text on any 4xx or 5xx."""
    session = requests.Session()

    def call(method: str, path: str, role: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {keys[role]}"}
        response = session.request(method, url + path, headers=headers, timeout=600, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response

    return call


def train_run(
    call: Callable[..., requests.Response], server_pid: int, body: dict | None = None
) -> tuple[dict, float, float]:
    """Train with `body` (default `{}`) and wait: the finished run, its seconds, and the peak RSS (MB)
    of the server's process tree meanwhile."""
    started = time.perf_counter()
    run = call("POST", "/api/v1/training", Role.ADMIN, json=body or {}).json()["run"]
    peak = 0.0
    while run["status"] not in FINISHED:
        peak = max(peak, _tree_rss_mb(server_pid))
        time.sleep(0.5)
        run = call("GET", f"/api/v1/training/runs/{run['id']}", Role.ADMIN).json()["run"]
    seconds = time.perf_counter() - started
    if run["status"] != RunStatus.SUCCEEDED:
        raise RuntimeError(f"training failed: {run['error']}")
    return run, seconds, peak


def _query(url: str, key: str, ds: Dataset, holdout: Holdout, *, version: str) -> list[np.ndarray]:
    """Every held-out unit's fold-in items -> the service's top 100, as dataset columns. An answer from
    a worker that has not yet loaded `version` (workers follow the new model within seconds) is asked
    again, so every unit is scored by the model that was trained."""
    index = {name: j for j, name in enumerate(ds.items)}
    X_in = holdout.test_input
    ranked: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * X_in.shape[0]
    local = threading.local()

    def ask(row: int) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        items = [ds.items[j] for j in X_in.indices[X_in.indptr[row] : X_in.indptr[row + 1]]]
        deadline = time.monotonic() + 60
        while True:
            response = local.session.post(
                url + "/api/v1/recommendations",
                json={"items": items, "k": 100},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            response.raise_for_status()
            answer = response.json()
            if answer["model_version"] == version or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if answer["model_version"] != version:
            raise RuntimeError(f"a worker still serves {answer['model_version']}, not {version}")
        ranked[row] = np.array([index[e["item"]] for e in answer["items"]], dtype=np.int64)

    with ThreadPoolExecutor(QUERY_CLIENTS) as pool:
        list(pool.map(ask, range(X_in.shape[0])))
    return ranked
