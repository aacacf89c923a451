"""`airec bench service`: recommendation quality as a user gets it, against strong simple baselines.

For each dataset and seed: start the real service (gunicorn, default settings, API keys on) on a fresh
database, POST every unit but the benchmark's test units through the HTTP API, train with the default
request (`{}`), then ask `/api/v1/recommendations` (k=100) with each held-out unit's fold-in items.
The answers are scored with the benchmark's metrics, beside EASE and item-kNN at their best
hyper-parameter on those same held-out units (an oracle) and popularity, all fitted on exactly the
units the service received (airec.recsys.holdout). Basket data go in twice, as clients send them: lone
baskets with no user, and one user id per basket (an order id).

`--engine direct` skips HTTP and the database: it fits exactly what the service would fit on the
same matrix, in this process (quick to iterate on; the default engine is the one that counts).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airec.benchmarks.quality_http import ServiceRun, run_http
from airec.config import Settings
from airec.recsys.datasets import LOADERS, MIN_RATING, Dataset, DatasetMissing, load_dataset, load_file
from airec.recsys.holdout import (
    COLUMNS,
    HEADLINE,
    Holdout,
    baselines,
    make_holdout,
    metrics_of_scores,
    received_scorer,
)

SHAPES = ("lone", "order")  # basket data: no user / an order id as the user
CHOICE_KEYS = (
    "best_epoch",
    "chosen_linear_weight",
    "chosen_lam",
    "chosen_n",
)  # what validation chose, for the JSON


# -- the same fit, in process ------------------------------------------------------------------------
def run_direct(
    ds: Dataset, holdout: Holdout, shape: str, *, env: dict[str, str], log: Callable[[str], None]
) -> ServiceRun:
    """What the service would train on these records, fitted here (no HTTP, no database)."""
    from threadpoolctl import threadpool_limits

    from airec.config import Settings
    from airec.training.fitting import FitJob, fit_model

    cols = holdout.received_items
    rows = holdout.received
    if ds.kind == "baskets" and shape == "order":  # the service sorts users by name
        rows = np.array(sorted(rows, key=lambda r: f"order-{ds.units[r]}"), dtype=np.int64)
    X = sp.csr_matrix(holdout.X[rows][:, cols])
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = Settings.from_env({"models_dir": tempfile.gettempdir()})
    finally:
        for k, v in previous.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    job = FitJob(
        algorithm=settings.algorithm,
        params={},
        settings=settings,
        X=X,
        items=[ds.items[j] for j in cols],
        baskets=ds.kind == "baskets" and shape == "lone",
        manifest={"data": {}},
    )
    started = time.perf_counter()
    with threadpool_limits(settings.train_threads):
        model, manifest = fit_model(job)
    seconds = time.perf_counter() - started
    log(f"    fitted {manifest['algorithm']} in {seconds:.0f} s")
    metrics = metrics_of_scores(received_scorer(model, holdout), holdout.test_input, holdout.test_hidden)
    return ServiceRun(metrics, manifest["algorithm"], seconds, None, manifest)


# -- the benchmark ----------------------------------------------------------------------------------
def request_items_cap() -> int:
    """The most items the service takes in one recommendation request with default settings."""
    from airec.serving.schemas import ITEMS_CAP

    return min(ITEMS_CAP, Settings.max_history)


def bench_case(
    ds: Dataset,
    seeds: Sequence[int],
    shapes: Sequence[str],
    *,
    engine: str,
    env: dict,
    workers: int,
    log: Callable[[str], None],
) -> dict:
    """Per shape: the service and the baselines per seed, and their means and ratios."""
    shapes = shapes if ds.kind == "baskets" else ("user",)
    out: dict = {"kind": ds.kind, "shape": list(ds.X.shape), "shapes": {}}
    per_seed_baselines = {}
    for shape in shapes:
        runs = []
        for seed in seeds:
            holdout = make_holdout(ds.X, ds.kind, seed, max_input=request_items_cap())
            log(
                f"  {ds.name} [{shape}] seed {seed}: {len(holdout.received)} units received, "
                f"{holdout.test_input.shape[0]} held out ({holdout.protocol})"
            )
            if seed not in per_seed_baselines:  # the same received units in every shape
                per_seed_baselines[seed] = baselines(holdout, log=log)
            if engine == "http":
                service = run_http(ds, holdout, shape, env=env, workers=workers, log=log)
            else:
                service = run_direct(ds, holdout, shape, env=env, log=log)
            runs.append(
                {
                    "seed": seed,
                    "protocol": holdout.protocol,
                    "service": service,
                    "baselines": per_seed_baselines[seed],
                }
            )
        out["shapes"][shape] = summarise(runs)
    return out


def summarise(runs: list[dict]) -> dict:
    protocol = runs[0]["protocol"]
    headline = HEADLINE[protocol]
    columns = COLUMNS[protocol]

    def mean(values) -> float:
        return float(np.mean(list(values)))

    rows = {"service": {c: mean(r["service"].metrics[c] for r in runs) for c in columns}}
    rows["service"]["train_s"] = mean(r["service"].train_seconds for r in runs)
    cpu = [r["service"].manifest.get("training_cpu_seconds") for r in runs]
    rows["service"]["train_cpu_s"] = mean(cpu) if None not in cpu else None
    rss = [r["service"].peak_rss_mb for r in runs if r["service"].peak_rss_mb is not None]
    rows["service"]["peak_rss_mb"] = max(rss) if rss else None
    params = {}
    for name in ("ease", "itemknn", "popularity"):
        rows[name] = {c: mean(r["baselines"][name]["metrics"][c] for r in runs) for c in columns}
        params[name] = [r["baselines"][name]["param"] for r in runs]
    ratios = {n: rows["service"][headline] / max(rows[n][headline], 1e-12) for n in ("ease", "itemknn")}
    per_seed = {
        name: [
            r["service"].metrics[headline] / max(r["baselines"][name]["metrics"][headline], 1e-12)
            for r in runs
        ]
        for name in ("ease", "itemknn")
    }
    return {
        "protocol": protocol,
        "headline": headline,
        "columns": list(columns),
        "rows": rows,
        "params": params,
        "ratios": ratios,
        "per_seed": per_seed,
        "seeds": [r["seed"] for r in runs],
        "algorithms": [r["service"].algorithm for r in runs],
        "refit": [r["service"].manifest.get("refit") for r in runs],
        "chosen": [
            {k: v for k, v in (r["service"].manifest.get("params") or {}).items() if k in CHOICE_KEYS}
            for r in runs
        ],
    }


def format_table(name: str, result: dict) -> str:
    lines = []
    units, items = result["shape"]
    for shape, res in result["shapes"].items():
        columns = res["columns"]
        seeds = res["seeds"]
        lines.append(
            f"{name} [{shape}]  ({result['kind']}, {units} units x {items} items, protocol="
            f"{res['protocol']}, seeds {seeds[0]}-{seeds[-1]})"
        )
        lines.append(
            f"{'system':<26}"
            + "".join(c.rjust(12) for c in columns)
            + "train_s".rjust(10)
            + "train_cpu_s".rjust(13)
            + "peak_rss_mb".rjust(13)
        )
        for system, row in res["rows"].items():
            label = {
                "service": f"service ({'/'.join(sorted(set(res['algorithms'])))})",
                "ease": f"ease (lambda {'/'.join(f'{p:g}' for p in res['params']['ease'])})",
                "itemknn": f"itemknn (n {'/'.join(str(p) for p in res['params']['itemknn'])})",
            }.get(system, system)
            cells = "".join(f"{row[c]:.4f}".rjust(12) for c in columns)
            if system == "service":
                rss = row["peak_rss_mb"]
                cpu = row.get("train_cpu_s")
                cpu_cell = f"{cpu:.1f}" if cpu is not None else "-"
                cells += (
                    f"{row['train_s']:.1f}".rjust(10)
                    + cpu_cell.rjust(13)
                    + (f"{rss:.0f}" if rss else "-").rjust(13)
                )
            lines.append(f"{label:<26}{cells}")
        ratio = "   ".join(
            f"service / {b}: {res['ratios'][b]:.3f} (per seed "
            f"{', '.join(f'{v:.3f}' for v in res['per_seed'][b])})"
            for b in ("ease", "itemknn")
        )
        lines.append(f"on {res['headline']}: {ratio}")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airec bench service", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=None, help=f"any of: {', '.join(LOADERS)}")
    parser.add_argument("--file", type=Path, action="append", default=[], help="a file (with --format)")
    parser.add_argument("--format", choices=["movielens", "baskets"], default="movielens")
    parser.add_argument("--min-rating", type=float, default=MIN_RATING)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--shapes", default=",".join(SHAPES), help="basket data: lone,order")
    parser.add_argument("--engine", choices=["http", "direct"], default="http")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="AIREC_X=VALUE",
        help="a setting of the service under test (repeatable), e.g. AIREC_TRAIN_REFIT=false",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (the default: 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = parser.parse_args(argv)
    env = dict(pair.split("=", 1) for pair in args.env)
    if any(not key.startswith("AIREC_") for key in env):
        parser.error("--env takes AIREC_* settings")
    names = args.datasets if args.datasets is not None else ([] if args.file else list(LOADERS))
    sources = [(n, lambda n=n: load_dataset(n)) for n in names]
    sources += [
        (p.name, lambda p=p: load_file(p, args.format, min_rating=args.min_rating)) for p in args.file
    ]
    seeds = list(range(args.seed_offset, args.seed_offset + args.seeds))
    shapes = [s for s in args.shapes.split(",") if s]
    results = {}
    started = time.perf_counter()
    for name, load in sources:
        try:
            ds = replace(load(), name=name)
        except DatasetMissing as exc:
            print(f"{name}: skipped ({exc})", flush=True)
            continue
        t0 = time.perf_counter()
        results[name] = bench_case(
            ds,
            seeds,
            shapes,
            engine=args.engine,
            env=env,
            workers=args.workers,
            log=lambda s: print(s, file=sys.stderr, flush=True),
        )
        print(format_table(name, results[name]) + f"({time.perf_counter() - t0:.0f} s)\n", flush=True)
    print(f"total: {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=lambda o: o.__dict__))
    return 0


if __name__ == "__main__":
    sys.exit(main())
