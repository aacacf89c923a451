"""Start a real gunicorn on 127.0.0.1 with its own database and model folder (benchmarks, tests).

Used by `airec bench serving` and by the tests that need several worker processes; everything it
starts it stops, and it only ever talks to 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import requests

from airec.config import TrainerMode
from airec.training.status import FINISHED


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """`with Gunicorn(workdir, workers=4, env={...}) as server: server.get("/healthz")`."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        workers: int = 2,
        threads: int = 4,
        env: dict[str, str] | None = None,
        database_url: str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()  # the server runs in it: its paths must not be relative
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.startup_timeout = startup_timeout
        self.log_path = self.workdir / "gunicorn.log"
        self.env = {
            **os.environ,
            "AIREC_DATABASE_URL": database_url or f"sqlite:///{self.workdir / 'airec.db'}",
            "AIREC_MODELS_DIR": str(self.workdir / "models"),
            "AIREC_AUTH": "off",
            "AIREC_TRAIN_EVERY": "off",
            "AIREC_LOG_JSON": "1",
            "AIREC_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # airec.gunicorn_conf makes a fresh one
        # The boot and 'ready' lines wait_ready counts are INFO; a quieter level has none to count.
        self._info_logs = self.env.get("AIREC_LOG_LEVEL", "INFO").upper() in ("DEBUG", "INFO")
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Gunicorn:
        argv = [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:airec.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "airec.wsgi:app",
        ]
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(  # in its own folder, as an installed service runs
            argv,
            cwd=self.workdir,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_ready()
        except BaseException:  # `with` never calls __exit__ when __enter__ raises: stop it here
            self.stop()
            raise
        return self

    def wait_ready(self) -> None:
        """Until every worker booted (their 'Booting worker' lines) and /readyz answers."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log_tail()}")
            booted = self._booted()
            try:
                ready = requests.get(self.url + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                ready = False
            if ready and booted >= self.workers and self._app_loaded():
                return
            time.sleep(0.2)
        raise TimeoutError(f"gunicorn not ready after {self.startup_timeout}s:\n{self.log_tail()}")

    def _booted(self) -> int:
        """Workers booted: their log lines, or (logs quieter than INFO) the master's children."""
        if not self._info_logs:
            return len(self.worker_pids())
        return self.log_path.read_text(errors="replace").count("Booting worker")

    def _app_loaded(self) -> bool:
        """Each worker logs 'airec worker N started' once its app (and served model) is up and its
        threads run (INFO only); with --preload the master built the app once, before the forks."""
        if not self._info_logs:
            return True
        return self.log_path.read_text(errors="replace").count("airec worker ") >= self.workers

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """The master's children (Linux /proc)."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def stop(self) -> None:
        self._log = stop_process(self.process, self._log, grace=20)

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # Small HTTP helpers: a new connection per call, so requests spread over the workers.
    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self._call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self._call("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self._call("DELETE", path, **kwargs)

    def _call(
        self, method: str, path: str, *, headers: dict | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Connection": "close", **(headers or {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def wait_run(self, run_id: int, timeout: float = 120.0) -> dict:
        """Poll a training run until it finished; returns it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.get(f"/api/v1/training/runs/{run_id}").json()["run"]
            if run["status"] in FINISHED:
                return run
            time.sleep(0.1)
        raise TimeoutError(f"run {run_id} not finished after {timeout}s")


class TrainingWorker:
    """`airec worker` as a real process: `with TrainingWorker(workdir, database_url=url) as worker:`.
    Own model folder; `kill(signal.SIGKILL)` stops it without any chance to clean up."""

    def __init__(
        self,
        workdir: Path | str,
        *,
        database_url: str,
        env: dict[str, str] | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.workdir = Path(workdir).resolve()  # the worker runs in it: its paths must not be relative
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / "worker.log"
        self.startup_timeout = startup_timeout
        self.env = {
            **os.environ,
            "AIREC_DATABASE_URL": database_url,
            "AIREC_MODELS_DIR": str(self.workdir / "models"),
            "AIREC_TRAINER": TrainerMode.WORKER.value,
            "AIREC_TRAIN_EVERY": "off",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> TrainingWorker:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airec.cli", "worker"],
            cwd=self.workdir,  # as an installed worker runs: no checkout needed
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while "airec worker ready" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                self.stop()
                raise RuntimeError(f"airec worker did not start:\n{tail}")
            time.sleep(0.1)
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the worker process alone (its fit child notices its parent is gone and dies)."""
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        self._log = stop_process(self.process, self._log, grace=30)

    def __enter__(self) -> TrainingWorker:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def stop_process(process: subprocess.Popen | None, log: IO[bytes] | None, *, grace: float) -> None:
    """SIGTERM, then after `grace` seconds SIGKILL to its whole process group; close its log. Returns
    None, the log's new value."""
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    if log is not None:
        log.close()


def planted_records(
    *, users: int = 300, groups: int = 10, group_size: int = 8, per_user: int = 4, seed: int = 0
) -> list[dict]:
    """Users who each take a few items of one planted group: a model that learns finds the group."""
    import random

    rng = random.Random(seed)
    records = []
    for u in range(users):
        group = u % groups
        items = rng.sample([f"g{group}-i{i}" for i in range(group_size)], per_user)
        records.append({"user": f"u{u}", "items": items})
    return records
