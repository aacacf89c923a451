"""Real gunicorn for tests: `with serve(tmp_path, workers=4) as server: server.get(...)`.

A thin layer over airec.benchmarks.server.Gunicorn (free port on 127.0.0.1, own SQLite file and
model folder, auth off unless `env` says otherwise). Reusable by any test that needs worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from airec.benchmarks.server import Gunicorn, planted_records
from tests import marks

__all__ = ["Gunicorn", "planted_records", "serve", "versions_seen", "wait_until"]


def serve(tmp_path: Path, *, workers: int = 2, env: dict[str, str] | None = None, **kwargs) -> Gunicorn:
    """A not yet started server (use it as a context manager); fast model polling by default."""
    marks.require("gunicorn", "a gunicorn server")
    return Gunicorn(
        tmp_path / "server",
        workers=workers,
        env={"AIREC_MODEL_POLL_SECONDS": "0.5", "AIREC_AUTH": "off", **(env or {})},
        **kwargs,
    )


def versions_seen(server: Gunicorn, n: int = 40, headers: dict | None = None) -> list[str | None]:
    """model_version of n recommendation requests, each on a new connection."""
    out = []
    for _ in range(n):
        response = server.post("/api/v1/recommendations", json={"items": ["g0-i0"], "k": 3}, headers=headers)
        assert response.status_code == 200, response.text
        out.append(response.json()["model_version"])
    return out


def wait_until(check: Callable[[], bool], timeout: float, step: float = 0.2) -> float:
    """Seconds until check() held; AssertionError after timeout."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)
    return time.monotonic() - started
