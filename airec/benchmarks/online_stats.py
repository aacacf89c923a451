"""GET /api/v1/stats/online over many impressions: how long the answer takes (issue 20 asks < 200 ms
over 1,000,000). Impressions are written through the real writer (airec.feedback.store, as a worker's
queue writes them: 1,000 per batch), spread over 30 days, 4 routes, 2 model versions and 2 variants,
with 10 items each and 2% taken; then the route is asked through the app for the whole range,
one day, and one version/variant/route. Run: python -m airec.benchmarks.online_stats [--impressions N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from peewee import SQL

from airec.feedback.kinds import Route

QUERIES = {
    "30 days, everything": {},
    "one day": {"since": "{day}T00:00:00", "until": "{day}T23:59:59"},
    "one version, variant and route": {"model_version": "v1", "variant": "new", "route": "user"},
}


def _batches(n: int, now: dt.datetime, seed: int = 0, size: int = 1000) -> Iterator[list[tuple]]:
    rng = np.random.default_rng(seed)
    routes = [route.value for route in Route]
    for start in range(0, n, size):
        count = min(size, n - start)
        # Written in time order, oldest first, as a worker's queue writes them.
        ages = np.sort(
            rng.uniform(30 * 86400 * (1 - (start + count) / n), 30 * 86400 * (1 - start / n), count)
        )[::-1]
        batch = []
        for i in range(count):
            k = start + i
            batch.append(
                (
                    f"b{k:015d}",
                    routes[k % 4],
                    f"user{k % 5000}",
                    ("v0", "v1")[(k // 4) % 2],
                    ("control", "new")[(k // 8) % 2],
                    [f"item{(k + j) % 3000}" for j in range(10)],
                    now - dt.timedelta(seconds=float(ages[i])),
                )
            )
        yield batch


def run(impressions: int, folder: Path, repeats: int = 20) -> list[tuple[str, float, float]]:
    """(query, median ms, worst ms) per query, after writing `impressions` through the real writer."""
    from airec.app import create_app, stop_background
    from airec.db import database
    from airec.feedback import store
    from airec.tables import Impression

    app = create_app(
        {
            "database_url": f"sqlite:///{folder}/online.db",
            "models_dir": str(folder / "models"),
            "scheduler": False,
            "auth": False,
            "log_level": "WARNING",
            "model_poll_seconds": 0,
        }
    )
    stop_background(app)  # no writer thread: the benchmark writes itself
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    started = time.perf_counter()
    with database.connection_context():
        for batch in _batches(impressions, now):
            store.write_impressions(batch)
        write_seconds = time.perf_counter() - started
        rows = list(Impression.select().where(SQL("id % 50 = 0")))
        for row in rows:
            store.mark_taken(row, 1 + row.id % 10, now)
        total = Impression.select().count()
    rate = total / write_seconds
    print(f"{total:,} impressions written in {write_seconds:.1f} s ({rate:,.0f}/s), {len(rows):,} taken")
    client = app.test_client()
    day = (now - dt.timedelta(days=3)).date().isoformat()
    out = []
    for name, query in QUERIES.items():
        params = {key: value.format(day=day) for key, value in query.items()}
        timings = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            answer = client.get("/api/v1/stats/online", query_string=params)
            timings.append((time.perf_counter() - t0) * 1000)
            assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        print(f"{name}: {body['impressions']:,} impressions, {body['takes']:,} takes")
        out.append((name, statistics.median(timings), max(timings)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impressions", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="airec-online-") as folder:
        rows = run(args.impressions, Path(folder))
    print(f"\n| query ({args.impressions:,} impressions, SQLite) | median ms | worst ms |")
    print("|---|---:|---:|")
    for name, median, worst in rows:
        print(f"| {name} | {median:.1f} | {worst:.1f} |")


if __name__ == "__main__":
    main()
