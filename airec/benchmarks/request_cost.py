"""`airec bench request`: what a recommendation costs beyond /healthz's and beyond the model's scoring.

The WSGI app is built as a gunicorn worker builds it (API keys on, impressions off, one BLAS and one
torch thread) and called in this process, one request at a time, on ml-latest-small imported and
trained by the `airec` commands. Three rows alternate round by round: /healthz, a recommendation, and
the same recommendation with the model's own scoring (`score_items`) replaced by a copy of a fixed
answer. Thread CPU per request; the differences are taken within each round, then the median.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from werkzeug.test import EnvironBuilder

from airec.auth.service import KEY_PREFIX
from airec.recsys.datasets import DEFAULT_ROOT

ROWS = ("GET /healthz", "POST /api/v1/recommendations", "same, the model's scoring free")


def _prepare(workdir: Path, ratings: Path) -> str:
    """Import the ratings, train the default model and return a read key, through the CLI."""
    env = {**os.environ, **_settings(workdir)}

    def airec(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "airec.cli", *args], env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    airec("import", "--format", "movielens", str(ratings))
    printed = airec("keys", "create", "--name", "bench", "--role", "read").split()  # log lines first
    key = next(word for word in reversed(printed) if word.startswith(KEY_PREFIX))
    airec("train")
    return key


def _settings(workdir: Path) -> dict[str, str]:
    return {
        "AIREC_DATABASE_URL": f"sqlite:///{workdir / 'airec.db'}",
        "AIREC_MODELS_DIR": str(workdir / "models"),
        "AIREC_IMPRESSIONS": "off",
        "AIREC_AUTH": "on",
    }


def _caller(app, key: str) -> Callable[[str, bytes | None], bytes]:
    """Call the WSGI app as gunicorn would, with environs werkzeug built once per path and body (so
    building them is not timed); each call gets its own copy and input stream."""
    templates: dict[tuple[str, bytes | None], dict] = {}

    def call(path: str, body: bytes | None = None) -> bytes:
        template = templates.get((path, body))
        if template is None:
            template = EnvironBuilder(
                path=path,
                method="POST" if body else "GET",
                headers={"Authorization": f"Bearer {key}"},
                data=body,
                content_type="application/json" if body else None,
            ).get_environ()
            templates[(path, body)] = template
        environ = {**template, "wsgi.input": io.BytesIO(body or b"")}
        status: list[str] = []
        answer = app(environ, lambda s, headers, exc_info=None: status.append(s))
        data = b"".join(answer)
        if not status[0].startswith("200"):
            raise RuntimeError(f"{path}: {status[0]} {data[:200]!r}")
        return data

    return call


def measure(
    workdir: Path, key: str, bodies: list[bytes], rounds: int, per_round: int
) -> dict[str, list[float]]:
    """Thread CPU (us per request) of each row in each round; rows alternate order every round."""
    for name, value in _settings(workdir).items():
        os.environ[name] = value
    import torch
    from threadpoolctl import threadpool_limits

    from airec.app import create_app
    from airec.serving.served import served_model

    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    app = create_app(start_threads=False)
    sink = open(os.devnull, "w")  # noqa: SIM115 - the access lines are formatted as deployed, then dropped
    for handler in logging.getLogger("airec").handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(sink)
    call = _caller(app, key)
    call("/api/v1/recommendations", bodies[0])  # loads the model
    model = served_model.active.model
    real_scoring = model.score_items
    fixed = real_scoring(sorted({served_model.active.index[n] for n in json.loads(bodies[0])["items"]}))

    def run(row: str) -> float:
        model.score_items = (lambda items: fixed.copy()) if row == ROWS[2] else real_scoring
        start = time.thread_time()
        for i in range(per_round):
            call("/healthz") if row == ROWS[0] else call("/api/v1/recommendations", bodies[i % len(bodies)])
        return (time.thread_time() - start) / per_round * 1e6

    results: dict[str, list[float]] = {row: [] for row in ROWS}
    with contextlib.redirect_stdout(sink):
        for row in ROWS:
            run(row)  # warm
        for r in range(rounds):
            for row in ROWS if r % 2 == 0 else ROWS[::-1]:
                results[row].append(run(row))
    model.score_items = real_scoring
    return results


def format_table(results: dict[str, list[float]]) -> str:
    healthz, real, free = (results[row] for row in ROWS)
    lines = [f"{'what':<40}{'us/request':>12}"]
    lines += [f"{row:<40}{statistics.median(results[row]):>12.0f}" for row in ROWS]
    beyond = statistics.median(f - h for f, h in zip(free, healthz, strict=True))
    model = statistics.median(r - f for r, f in zip(real, free, strict=True))
    lines.append(f"beyond /healthz and the model's scoring: {beyond:.0f} us (median of rounds)")
    lines.append(f"the model's scoring inside a request: {model:.0f} us (median of rounds)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from airec.benchmarks.serving import dataset_records

    parser = argparse.ArgumentParser(prog="airec bench request", description=__doc__.splitlines()[0])
    default = DEFAULT_ROOT / "ml-latest-small" / "ratings.csv"
    parser.add_argument("--file", type=Path, default=default, help="ml-latest-small's ratings.csv")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=200, help="requests per row and round")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        parser.error(f"no such file: {args.file}")
    if args.rounds < 1 or args.requests < 1:
        parser.error("--rounds and --requests must be at least 1")
    _, queries = dataset_records()
    bodies = [json.dumps({"items": q, "k": 10}).encode() for q in queries]
    with tempfile.TemporaryDirectory(prefix="airec-bench-request-") as tmp:
        key = _prepare(Path(tmp), args.file)
        results = measure(Path(tmp), key, bodies, args.rounds, args.requests)
    print(
        f"request cost in process (API keys on, impressions off, one thread); "
        f"medians of {args.rounds} rounds of {args.requests} requests per row"
    )
    print(format_table(results))
    return 0
