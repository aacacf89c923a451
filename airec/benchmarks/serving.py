"""`airec bench serving`: the service as deployed against the framework's own ceiling.

Starts real gunicorn on 127.0.0.1 with `make run`'s defaults (2 workers, API keys on), POSTs
ml-latest-small (ratings >= 4) over HTTP, trains with the default request (`{}`), then drives it with
wrk (airec.benchmarks.wrk) in rounds of: a trivial endpoint (the generator's own ceiling), /healthz,
recommendations (10 items in, k=10, read key), the same with explain=true, the same with a category
filter that keeps ~10% of the items, the same with 1% of the items hidden, the reads a dashboard
polls, and recommendations at half the saturated rate. The recommendations row runs against the
deployment that served everything else (AIREC_IMPRESSIONS=on, the default), and against two more
deployments of the same database and model folder that serve only the recommendation rows, one with
impressions off and one with them on: the impressions ratio compares those two, which differ in that
setting alone. All stay up for the whole run. /healthz, the recommendation rows and the category row
run one right after the other (the order reverses by round),
as this machine's speed drifts within seconds. Every figure is the median over the rounds; ratios are
taken within each round (same server, same minute) before the median. Then one phase while
a training run is in flight, and (unless --catalogues none) latency across catalogue sizes
(airec.benchmarks.catalogue).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import requests

from airec.auth.roles import Role
from airec.benchmarks.load_inputs import make_keys, write_bodies
from airec.benchmarks.server import Gunicorn
from airec.benchmarks.wrk import Load, run_wrk, trivial_server, wrk_path
from airec.training.status import FINISHED, RunStatus

READS = (  # (row name, path, role)
    ("GET /api/v1/stats", "/api/v1/stats", Role.READ),
    ("GET /api/v1/items", "/api/v1/items", Role.READ),
    ("GET /api/v1/training/runs", "/api/v1/training/runs", Role.ADMIN),
    ("GET /api/v1/models", "/api/v1/models", Role.ADMIN),
)
HEALTHZ = "GET /healthz"
RECOMMEND = "POST /api/v1/recommendations"
#: The same requests against a deployment with AIREC_IMPRESSIONS=off (RECOMMEND's has them on), and
#: against one like it but for impressions on: the impressions ratio is ON_ROW / OFF_ROW.
IMPRESSIONS_OFF_ROW = "POST recommendations, impressions off"
IMPRESSIONS_ON_ROW = "POST recommendations, impressions on"


#: The catalogue rows: every item in one of CATEGORIES categories (a filter keeps ~1/CATEGORIES of the
#: items), and one item in HIDDEN_EVERY hidden for the hidden row only.
CATEGORIES, HIDDEN_EVERY = 10, 100
FILTERED_ROW = "POST recommendations, ~10% category"
HIDDEN_ROW = "POST recommendations, 1% hidden"
#: The same requests with explain=true: each proposed item names the inputs whose removal lowers its score.
EXPLAIN_ROW = "POST recommendations explain=true"


def _catalogue(items: list[str], hide: bool) -> list[dict]:
    return [
        {"item": name, "categories": [f"bench/c{i % CATEGORIES}"], "hidden": hide and i % HIDDEN_EVERY == 0}
        for i, name in enumerate(items)
    ]


def describe_catalogue(server: Gunicorn, key: str, items: list[str], *, hide: bool) -> None:
    """Describe every item (bulk upserts), hiding 1% of them when `hide`; then let the workers see it."""
    entries = _catalogue(items, hide)
    for s in range(0, len(entries), 10000):
        _call(server, key, "POST", "/api/v1/items", json={"items": entries[s : s + 10000]})
    time.sleep(1.5)  # every worker reads the catalogue's version at most every 0.5 s


def dataset_records() -> tuple[list[dict], list[list[str]]]:
    """ml-latest-small as records (a user's items in records of at most 1,000), and 10-item queries."""
    from airec.recsys.datasets import load_ml_latest_small

    ds = load_ml_latest_small()
    X, rng = ds.X, random.Random(0)
    records, queries = [], []
    for row in range(X.shape[0]):
        items = [ds.items[j] for j in X.indices[X.indptr[row] : X.indptr[row + 1]]]
        user = str(ds.units[row])
        records += [{"user": user, "items": items[s : s + 1000]} for s in range(0, len(items), 1000)]
        if len(items) >= 10:
            queries.append(rng.sample(items, 10))
    return records, queries


def _call(server: Gunicorn, key: str, method: str, path: str, **kwargs) -> dict:
    answer = requests.request(
        method, server.url + path, headers={"Authorization": f"Bearer {key}"}, timeout=600, **kwargs
    )
    if answer.status_code >= 400:
        raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
    return answer.json()


def _train(server: Gunicorn, admin: str) -> dict:
    run = _call(server, admin, "POST", "/api/v1/training", json={})["run"]
    while run["status"] not in FINISHED:
        time.sleep(0.5)
        run = _call(server, admin, "GET", f"/api/v1/training/runs/{run['id']}")["run"]
    if run["status"] != RunStatus.SUCCEEDED:
        raise RuntimeError(f"training failed: {run['error']}")
    return run


def one_round(
    server: Gunicorn,
    keys: dict,
    bodies: Path,
    seconds: float,
    ceiling_url: str,
    catalogue: dict,
    quiet: Gunicorn,
    twin: Gunicorn,
    index: int = 0,
) -> dict[str, Load]:
    """Every row once; `quiet` is the deployment without impressions, `twin` the same with them on.
    /healthz and the rows a ratio compares (impressions off and on, the category filter) run right
    beside RECOMMEND, in reversed order every other round: this machine's speed drifts within
    seconds, so a ratio's two sides are measured as close together as they can be."""
    pids = server.worker_pids()
    out = {"trivial endpoint (wrk's ceiling)": run_wrk(ceiling_url, seconds=seconds)}
    rec_url = server.url + "/api/v1/recommendations"
    post = {"key": keys[Role.READ], "method": "POST", "bodies": bodies, "pids": pids}
    quiet_post = {**post, "pids": quiet.worker_pids()}
    quiet_url = quiet.url + "/api/v1/recommendations"
    twin_post = {**post, "pids": twin.worker_pids()}
    twin_url = twin.url + "/api/v1/recommendations"
    # The rows compared with RECOMMEND run right beside it, in reversed order every other round, so
    # neither side of a ratio always comes first.
    beside = [
        (HEALTHZ, lambda: run_wrk(server.url + "/healthz", seconds=seconds, pids=pids)),
        (IMPRESSIONS_OFF_ROW, lambda: run_wrk(quiet_url, seconds=seconds, **quiet_post)),
        (IMPRESSIONS_ON_ROW, lambda: run_wrk(twin_url, seconds=seconds, **twin_post)),
        (RECOMMEND, lambda: run_wrk(rec_url, seconds=seconds, **post)),
        (
            FILTERED_ROW,
            lambda: run_wrk(rec_url, seconds=seconds, **{**post, "bodies": catalogue["filtered_bodies"]}),
        ),
    ]
    for name, measure in beside[:: -1 if index % 2 else 1]:
        out[name] = measure()
    # The table lists the rows in one order, whichever ran first this round.
    out = {name: out[name] for name in ("trivial endpoint (wrk's ceiling)", *(n for n, _ in beside))}
    out[EXPLAIN_ROW] = run_wrk(rec_url, seconds=seconds, **{**post, "bodies": catalogue["explain_bodies"]})
    describe_catalogue(server, keys[Role.INGEST], catalogue["items"], hide=True)
    out[HIDDEN_ROW] = run_wrk(rec_url, seconds=seconds, **post)
    describe_catalogue(server, keys[Role.INGEST], catalogue["items"], hide=False)
    for name, path, role in READS:
        out[name] = run_wrk(server.url + path, seconds=seconds, key=keys[role], pids=pids)
    # Half the saturated rate: 8 connections, each pausing so that together they send rate / 2.
    half = out[RECOMMEND].rps / 2
    delay = max(0.0, 8 / half * 1000 - out[RECOMMEND].p50 / 4) if half > 0 else 0.0
    out["POST recommendations at half rate"] = run_wrk(
        rec_url, seconds=seconds, connections=8, delay_ms=delay, **post
    )
    return out


def run(args: argparse.Namespace, log) -> dict:
    wrk_path()
    results: dict = {"rounds": []}
    if not args.catalogues_only:
        _dataset_phase(args, results, log)
    if args.catalogues:
        from airec.benchmarks.catalogue import measure

        log("catalogue sizes:")
        with tempfile.TemporaryDirectory(prefix="airec-bench-catalogue-") as tmp:
            results["catalogues"] = [
                measure(n, seconds=args.seconds, workdir=Path(tmp), log=log) for n in args.catalogues
            ]
    return results


def _dataset_phase(args: argparse.Namespace, results: dict, log) -> None:
    records, queries = dataset_records()
    with tempfile.TemporaryDirectory(prefix="airec-bench-serving-") as tmp:
        database_url = f"sqlite:///{tmp}/airec.db"
        keys = make_keys(database_url)
        bodies = write_bodies(Path(tmp) / "bodies.txt", queries)
        with (
            Gunicorn(
                tmp,
                workers=args.workers,
                database_url=database_url,
                env={"AIREC_AUTH": "on", "AIREC_IMPRESSIONS": "on"},
                startup_timeout=300,
            ) as server,
            trivial_server() as ceiling_url,
        ):
            started = time.perf_counter()
            for s in range(0, len(records), 1000):
                batch = {"records": records[s : s + 1000]}
                _call(server, keys[Role.INGEST], "POST", "/api/v1/interactions", json=batch)
            log(f"posted {len(records)} records in {time.perf_counter() - started:.1f} s")
            run_ = _train(server, keys[Role.ADMIN])
            results["model"] = run_["model_version"]
            log(f"trained {run_['model_version']} in {run_['duration_seconds']:.0f} s")
            time.sleep(3)  # every worker follows the pointer (AIREC_MODEL_POLL_SECONDS=2)
            items = list(dict.fromkeys(name for record in records for name in record["items"]))
            describe_catalogue(server, keys[Role.INGEST], items, hide=False)
            quiet, twin = (_beside(tmp, args, database_url, server, setting) for setting in ("off", "on"))
            catalogue = {
                "items": items,
                "filtered_bodies": write_bodies(Path(tmp) / "filtered.txt", queries, categories=["bench/c3"]),
                "explain_bodies": write_bodies(Path(tmp) / "explain.txt", queries, explain=True),
            }
            with quiet, twin:
                for url in (server.url, quiet.url, twin.url):  # warm-up
                    run_wrk(
                        url + "/api/v1/recommendations",
                        seconds=2,
                        key=keys[Role.READ],
                        method="POST",
                        bodies=bodies,
                    )
                for r in range(args.rounds):
                    results["rounds"].append(
                        one_round(server, keys, bodies, args.seconds, ceiling_url, catalogue, quiet, twin, r)
                    )
                    log(f"round {r + 1}/{args.rounds} done")
            results["training"] = _while_training(server, keys, bodies, args.seconds)


def _beside(
    tmp: str, args: argparse.Namespace, database_url: str, server: Gunicorn, setting: str
) -> Gunicorn:
    """A deployment of the same database and models that serves only the recommendation rows, with
    AIREC_IMPRESSIONS=`setting`."""
    return Gunicorn(
        Path(tmp) / f"impressions-{setting}",
        workers=args.workers,
        database_url=database_url,
        env={
            "AIREC_AUTH": "on",
            "AIREC_IMPRESSIONS": setting,
            "AIREC_MODELS_DIR": str(server.workdir / "models"),
        },
        startup_timeout=300,
    )


def _while_training(server: Gunicorn, keys: dict, bodies: Path, seconds: float) -> dict:
    run_ = _call(server, keys[Role.ADMIN], "POST", "/api/v1/training", json={})["run"]
    time.sleep(1.0)
    load = run_wrk(
        server.url + "/api/v1/recommendations",
        seconds=seconds,
        key=keys[Role.READ],
        method="POST",
        bodies=bodies,
        pids=server.worker_pids(),
    )
    status = _call(server, keys[Role.ADMIN], "GET", f"/api/v1/training/runs/{run_['id']}")["run"]["status"]
    _train_wait(server, keys[Role.ADMIN], run_["id"])
    return {"load": load, "still_running": status == RunStatus.RUNNING}


def _train_wait(server: Gunicorn, admin: str, run_id: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        run = _call(server, admin, "GET", f"/api/v1/training/runs/{run_id}")["run"]
        if run["status"] in FINISHED:
            return
        time.sleep(0.5)


def _median(rounds: list[dict[str, Load]], name: str, attr: str) -> float:
    values = [getattr(r[name], attr) for r in rounds if getattr(r[name], attr) is not None]
    return statistics.median(values) if values else float("nan")


def _ratio_lines(rounds: list[dict[str, Load]]) -> list[str]:
    """The rows' ratios to their comparison rows, each taken within a round before the median."""
    lines = []
    for name in (FILTERED_ROW, HIDDEN_ROW):
        against = statistics.median(r[name].rps / r[RECOMMEND].rps for r in rounds)
        lines.append(f"{name}: {against:.2f}x the unfiltered rate (same rounds; the target is >= 0.9)")
    on_off = statistics.median(r[IMPRESSIONS_ON_ROW].rps / r[IMPRESSIONS_OFF_ROW].rps for r in rounds)
    lines.append(
        f"impressions on / off: {on_off:.2f}x the request rate of the deployment without impressions "
        "(two deployments that differ in AIREC_IMPRESSIONS alone; same rounds, alternating; "
        "the target is >= 0.95)"
    )
    busy = statistics.median(r[RECOMMEND].rps / r[IMPRESSIONS_OFF_ROW].rps for r in rounds)
    lines.append(
        f"{RECOMMEND} / impressions off: {busy:.2f}x (impressions on, on the deployment that also "
        "served the ingest, the training and every other row)"
    )
    against = statistics.median(r[EXPLAIN_ROW].rps / r[RECOMMEND].rps for r in rounds)
    cost = statistics.median(r[EXPLAIN_ROW].p50 - r[RECOMMEND].p50 for r in rounds)
    lines.append(f"{EXPLAIN_ROW}: {against:.2f}x the plain rate, p50 {cost:+.2f} ms (same rounds)")
    return lines


def format_table(results: dict, args: argparse.Namespace) -> str:
    if not results["rounds"]:
        from airec.benchmarks.catalogue import format_rows

        head = "recommendations across catalogue sizes (wrk -t1 -c2, 10 items in, k=10; RSS after the load):"
        return head + "\n" + format_rows(results["catalogues"])
    rounds = results["rounds"]
    health = [r[HEALTHZ].rps for r in rounds]
    lines = [
        f"serving benchmark: gunicorn {args.workers} workers (defaults, API keys on), "
        f"model {results['model']} "
        f"(autoencoder, ml-latest-small); wrk -t2 -c16 for {args.seconds:.0f} s per row; "
        f"medians of {len(rounds)} rounds",
        f"{'what':<36}{'req/s':>9}{'x healthz':>10}{'p50 ms':>8}{'p99 ms':>8}{'CPU us/req':>11}{'errors':>8}",
    ]
    for name in rounds[0]:
        ratio = statistics.median(r[name].rps / h for r, h in zip(rounds, health, strict=True))
        cpu, errors = _median(rounds, name, "cpu_us"), sum(r[name].errors for r in rounds)
        lines.append(
            f"{name:<36}{_median(rounds, name, 'rps'):>9.0f}{ratio:>10.2f}"
            f"{_median(rounds, name, 'p50'):>8.2f}{_median(rounds, name, 'p99'):>8.2f}{cpu:>11.0f}{errors:>8}"
        )
    busy = results["training"]["load"]
    ratio = busy.rps / statistics.median(health)
    lines.append(
        f"{'POST recommendations while training':<36}{busy.rps:>9.0f}{ratio:>10.2f}{busy.p50:>8.2f}"
        f"{busy.p99:>8.2f}{busy.cpu_us or float('nan'):>11.0f}{busy.errors:>8}"
    )
    if not results["training"]["still_running"]:
        lines.append("note: the training run ended before that phase did; its tail ran idle")
    lines += _ratio_lines(rounds)
    half = [r["POST recommendations at half rate"].rps / r[RECOMMEND].rps for r in rounds]
    lines.append(
        f"half-rate row: {statistics.median(half):.2f} of the saturated rate "
        "(wrk -c8, each connection pausing between requests)"
    )
    if "catalogues" in results:
        from airec.benchmarks.catalogue import format_rows

        lines += [
            "",
            "recommendations across catalogue sizes (wrk -t1 -c2, 10 items in, k=10; RSS after the load):",
            format_rows(results["catalogues"]),
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airec bench serving", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk duration per row")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every row (medians are reported)")
    parser.add_argument(
        "--catalogues",
        default="1000,10000,50000,100000",
        help="catalogue sizes for the latency table, or 'none'",
    )
    parser.add_argument("--catalogues-only", action="store_true", help="only the catalogue-size table")
    args = parser.parse_args(argv)
    args.catalogues = [] if args.catalogues == "none" else [int(n) for n in args.catalogues.split(",")]
    results = run(args, log=lambda text: print(text, file=sys.stderr, flush=True))
    print(format_table(results, args))
    return 0
