"""`airec bench ingest`: concurrent clients post batches to real gunicorn workers while a model trains,
then the database is checked: every acknowledged interaction stored exactly once, nothing else.

Each record carries a user name no other record has, so the (user, item) pairs in the database can be
compared with the acknowledged ones as sets: lost = acknowledged but missing; duplicated = stored
more than once; unexpected = stored but never acknowledged (e.g. half of a failed batch).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import requests

from airec.auth.roles import Role
from airec.benchmarks.ingest_batches import make_batches
from airec.benchmarks.load_inputs import make_keys
from airec.benchmarks.server import Gunicorn
from airec.training.status import RunStatus

SEED_USERS = 60
#: Over Gunicorn's defaults: keys required, no scheduler thread, and a quiet log (no access lines).
SERVER_ENV = {"AIREC_AUTH": "on", "AIREC_SCHEDULER": "0", "AIREC_LOG_LEVEL": "WARNING"}


@dataclass
class BenchResult:
    clients: int
    records: int = 0
    interactions: int = 0
    seconds: float = 0.0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    training: str = "not started"
    round_rates: list[float] = field(default_factory=list)
    #: False for the in-process rows, which store through no server and check nothing afterwards
    checked: bool = True

    @property
    def rate(self) -> float:
        return self.interactions / self.seconds if self.seconds else 0.0

    def table(self) -> str:
        names = ("clients", 8), ("records", 8), ("interactions", 13), ("seconds", 8), ("interactions/s", 15)
        head = " ".join(f"{name:>{width}}" for name, width in names) + f" {'errors':>7}"
        row = (
            f"{self.clients:>8} {self.records:>8} {self.interactions:>13} {self.seconds:>8.2f} "
            f"{self.rate:>15.0f} {self.errors:>7}"
        )
        check = (
            f"check: lost={self.lost} duplicated={self.duplicated} unexpected={self.unexpected}; "
            f"training during the run: {self.training}"
        )
        return "\n".join([head, row, check])


def _make_keys(database_url: str) -> tuple[str, str]:
    """Migrate and create an ingest and an admin key, directly in the database."""
    keys = make_keys(database_url)
    return keys[Role.INGEST], keys[Role.ADMIN]


def stored_pairs(database_url: str) -> Counter:
    """(user, item) -> how many times it is stored."""
    from airec.db import init_db

    db = init_db(database_url)
    with db.connection_context():
        rows = db.execute_sql(
            "SELECT u.name, i.name FROM interactions x JOIN users u ON u.id = x.user_id "
            "JOIN items i ON i.id = x.item_id"
        ).fetchall()
    db.close()
    return Counter(rows)


def _client(
    url: str,
    key: str,
    index: int,
    batches: int,
    per_batch: int,
    items: int,
    acked: list,
    result: BenchResult,
    lock: threading.Lock,
    start: threading.Barrier | None = None,
    tag: str = "",
) -> None:
    """Post `batches` batches one after another; bodies are encoded before the clock starts."""
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    prepared = [
        (records, json.dumps({"records": records}).encode())
        for records in make_batches(index, batches, per_batch, items, tag)
    ]
    if start is not None:
        start.wait()
    for records, body in prepared:
        try:
            answer = session.post(url + "/api/v1/interactions", data=body, timeout=120)
            ok = answer.status_code == 201
            detail = f"{answer.status_code} {answer.text[:200]}"
        except requests.RequestException as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        with lock:
            if ok:
                acked.extend((rec["user"], item) for rec in records for item in rec["items"])
                result.records += len(records)
                result.interactions += sum(len(rec["items"]) for rec in records)
            else:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(detail)


def run(
    *,
    clients: int = 8,
    batches: int = 20,
    records: int = 50,
    items: int = 300,
    workers: int = 3,
    train: bool = True,
    database_url: str | None = None,
    workdir: str | None = None,
    rounds: int = 1,
) -> BenchResult:
    """Start gunicorn, seed data, start a training run, post concurrently (`rounds` times, each with
    new users), stop, verify."""
    with tempfile.TemporaryDirectory(prefix="airec-bench-", dir=workdir) as where:
        url_db = database_url or f"sqlite:///{where}/bench.db"
        ingest_key, admin_key = _make_keys(url_db)
        server = Gunicorn(where, workers=workers, database_url=url_db, env=SERVER_ENV)
        result = BenchResult(clients=clients)
        acked: list[tuple[str, str]] = []
        try:
            server.start()
            admin = {"Authorization": f"Bearer {admin_key}"}
            seed = _seed(server.url, ingest_key, items)
            run_id = _start_training(server.url, admin) if train else None
            for round_ in range(rounds):
                shape = {"clients": clients, "batches": batches, "records": records, "items": items}
                _post_round(server.url, ingest_key, f"r{round_}-", acked, result, **shape)
            if run_id is not None:
                result.training = _training_summary(server.url, admin, run_id)
        finally:
            server.stop()
        _check_stored(result, stored_pairs(url_db), acked, seed)
        return result


def _seed(url: str, ingest_key: str, items: int) -> list[dict]:
    """SEED_USERS users stored before the clients start, so that a training run has data to fit."""
    seed = [
        {"user": f"seed-{u}", "items": [f"item-{(u * k) % items}" for k in (1, 2, 3, 5)]}
        for u in range(1, SEED_USERS + 1)
    ]
    requests.post(
        url + "/api/v1/interactions",
        json={"records": seed},
        timeout=60,
        headers={"Authorization": f"Bearer {ingest_key}"},
    ).raise_for_status()
    return seed


def _post_round(
    url: str,
    key: str,
    tag: str,
    acked: list,
    result: BenchResult,
    *,
    clients: int,
    batches: int,
    records: int,
    items: int,
) -> None:
    """One round: `clients` threads post their batches at once; the clock starts when every client has
    its bodies encoded, and the round's rate joins `result`."""
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    threads = [
        threading.Thread(
            target=_client,
            args=(url, key, i, batches, records, items, acked, result, lock, start, tag),
        )
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    before = result.interactions
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    result.seconds += seconds
    result.round_rates.append((result.interactions - before) / seconds)


def _check_stored(result: BenchResult, stored: Counter, acked: list, seed: list[dict]) -> None:
    """Compare what the database holds with what was acknowledged: lost, duplicated, unexpected."""
    seeded = {(rec["user"], item) for rec in seed for item in dict.fromkeys(rec["items"])}
    expected = Counter(acked)
    result.lost = sum((expected - stored).values())
    result.duplicated = sum(count - 1 for count in stored.values() if count > 1)
    result.unexpected = sum(1 for pair in stored if pair not in expected and pair not in seeded)


def _start_training(url: str, admin: dict) -> int | None:
    """A long-ish autoencoder run in one worker; returns its id once it is running."""
    body = {"algorithm": "autoencoder", "params": {"epochs": 400, "patience": 400}}
    answer = requests.post(url + "/api/v1/training", headers=admin, json=body, timeout=30)
    if answer.status_code != 202:
        return None
    run_id = answer.json()["run"]["id"]
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = requests.get(f"{url}/api/v1/training/runs/{run_id}", headers=admin, timeout=10).json()
        if status["run"]["status"] != RunStatus.QUEUED:
            break
        time.sleep(0.1)
    return run_id


def _training_summary(url: str, admin: dict, run_id: int) -> str:
    run = requests.get(f"{url}/api/v1/training/runs/{run_id}", headers=admin, timeout=10).json()["run"]
    progress = run.get("progress") or {}
    return f"run {run_id} {run['status']} at epoch {progress.get('epoch')}/{progress.get('max_epochs')}"


#: (row name, clients, PostgreSQL, training in flight)
SCENARIOS = (
    ("1 client, SQLite", 1, False, False),
    ("8 clients, SQLite", 8, False, False),
    ("1 client, PostgreSQL", 1, True, False),
    ("8 clients, PostgreSQL", 8, True, False),
    ("8 clients, SQLite, while training", 8, False, True),
)


@contextmanager
def postgres_database(server: str) -> Iterator[str]:
    """A fresh database on `server` (postgresql://user@host:port), dropped afterwards."""
    import psycopg2

    name = f"airec_bench_{secrets.token_hex(4)}"
    admin = psycopg2.connect(f"{server}/postgres")
    admin.autocommit = True
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
        yield f"{server}/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def matrix(*, batches: int, records: int, rounds: int, workers: int, postgres: str | None, log) -> list:
    """Every scenario: `rounds` rounds of 1,000-record batches on one fresh server; median rate."""
    rows = []
    for name, clients, on_postgres, train in SCENARIOS:
        if on_postgres and not postgres:
            continue
        per_client = max(1, batches // clients)
        common = {
            "clients": clients,
            "batches": per_client,
            "records": records,
            "workers": workers,
            "train": train,
            "rounds": rounds,
        }
        if on_postgres:
            with postgres_database(postgres) as url:
                result = run(database_url=url, **common)
        else:
            result = run(**common)
        log(f"{name}: {[round(r) for r in result.round_rates]} interactions/s")
        rows.append((name, result))
        if name == "1 client, SQLite":
            rows += _floor_rows(batches=per_client, records=records, rounds=rounds, log=log)
    return rows


def _floor_rows(*, batches: int, records: int, rounds: int, log) -> list:
    """The same one-client work without the web stack, and its SQL alone (airec.benchmarks.ingest_floor)."""
    from airec.benchmarks.ingest_floor import measure

    rates = measure(batches=batches, records=records, rounds=rounds)
    log(f"in-process: {rates}")
    names = {"service": "  same, ingest_records in-process", "sql": "  same, its SQL alone (replayed)"}
    done = batches * records * rounds
    return [
        (names[key], BenchResult(clients=1, records=done, round_rates=[rate], checked=False))
        for key, rate in rates.items()
    ]


def format_matrix(rows: list, *, records: int, rounds: int, workers: int) -> str:
    lines = [
        f"ingest benchmark: gunicorn {workers} workers (defaults, API keys on), {records}-record batches "
        f"(3 items each), bodies encoded before the clock; median of {rounds} rounds per row",
        f"{'scenario':<36}{'batches':>8}{'interactions/s':>16}{'errors':>8}{'lost':>6}{'dup':>5}{'unexp':>7}"
        "  training",
    ]
    for name, r in rows:
        training = r.training if "training" in name else "-"
        rate = statistics.median(r.round_rates)
        if not r.checked:
            dashes = f"{'-':>8}{'-':>6}{'-':>5}{'-':>7}  -"
            lines.append(f"{name:<36}{r.records // records:>8}{rate:>16.0f}{dashes}")
            continue
        lines.append(
            f"{name:<36}{r.records // records:>8}{rate:>16.0f}{r.errors:>8}"
            f"{r.lost:>6}{r.duplicated:>5}{r.unexpected:>7}  {training}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airec bench ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--single", action="store_true", help="one scenario from the options below")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20, help="batches per client (--single), or in all")
    parser.add_argument("--records", type=int, default=1000, help="records per batch (3 items each)")
    parser.add_argument("--items", type=int, default=300, help="distinct item names")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-train", action="store_true", help="do not train during the run (--single)")
    parser.add_argument("--database-url", default=None, help="--single: default a fresh SQLite file")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server for its rows ('' to skip them)",
    )
    args = parser.parse_args(argv)
    if not args.single:
        rows = matrix(
            batches=args.batches,
            records=args.records,
            rounds=args.rounds,
            workers=args.workers,
            postgres=args.postgres or None,
            log=lambda t: print(t, file=sys.stderr, flush=True),
        )
        print(format_matrix(rows, records=args.records, rounds=args.rounds, workers=args.workers))
        bad = any(r.errors or r.lost or r.duplicated or r.unexpected for _, r in rows)
        return 1 if bad else 0
    result = run(
        clients=args.clients,
        batches=args.batches,
        records=args.records,
        items=args.items,
        workers=args.workers,
        train=not args.no_train,
        database_url=args.database_url,
        rounds=args.rounds,
    )
    print(result.table())
    for sample in result.error_samples:
        print(f"error: {sample}", file=sys.stderr)
    return 0 if result.errors == 0 and result.lost == result.duplicated == result.unexpected == 0 else 1
