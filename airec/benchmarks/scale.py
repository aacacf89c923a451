"""`airec bench scale`: how import and training grow with the data, on synthetic data with planted
structure at 1x, 10x and 100x ml-latest-small's interactions and at ML-20M's shape.

For each size: generate the data (each user draws most items from three planted groups of 100 items,
the rest by global popularity), write it as a user,item CSV, import it with `airec import`'s code into a
fresh PostgreSQL database (timed), then train each algorithm in a child process exactly as a run
does (read the data from the database, split, fit with validation, evaluate, refit, write the folder)
and report time per epoch and in total, the child's peak RSS, the model folder's size and the time
to store that folder in the database (AIREC_MODEL_STORE=database). Every database it creates it
drops. Needs PostgreSQL (--admin-url).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from airec.benchmarks.scale_tables import print_tables

#: ml-latest-small: 100,836 ratings by 610 users of 9,742 movies.
ML_SMALL = (610, 9742, 100_836)


@dataclass(frozen=True)
class Size:
    name: str
    users: int
    items: int
    interactions: int


SIZES = {
    "1x": Size("1x", *ML_SMALL),
    "10x": Size("10x", ML_SMALL[0] * 10, ML_SMALL[1], ML_SMALL[2] * 10),
    "100x": Size("100x", ML_SMALL[0] * 100, ML_SMALL[1], ML_SMALL[2] * 100),
    "ml20m": Size("ml20m", 138_493, 20_000, 20_000_263),
    # ML-20M's catalogue and density with a tenth of its users: an epoch of the network costs a tenth of
    # a full one. EASE and the linear path work in their dual form here (fewer units than items), so
    # they do not stand for the full size's primal (items x items) factorisations.
    "ml20m-tenth": Size("ml20m_tenth", 13_849, 20_000, 2_000_026),
}
GROUP_SIZE = 100
TASTES = 3
IN_GROUP = 0.75


def synthesize(size: Size, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) index pairs, unique, sorted by user. Items fall in groups of GROUP_SIZE, each with
    its own popular and rare members; every user has TASTES home groups and draws IN_GROUP of its items
    from them (skewed to each group's popular members), the rest from the whole catalogue by Zipf
    popularity. Per-user counts are log-normal around the mean. Draws repeat (more per user) until the
    unique pairs reach the size's interaction count."""
    rng = np.random.default_rng(seed)
    groups = max(1, size.items // GROUP_SIZE)
    mean = size.interactions / size.users
    wanted = np.maximum(5, rng.lognormal(np.log(mean) - 0.5, 1.0, size.users))
    cap = min(size.items // 4, TASTES * GROUP_SIZE * 2)
    for _ in range(5):  # scale to the total, cap, and give what the capped users lost to the others
        wanted = np.minimum(wanted * size.interactions / wanted.sum(), cap)
    wanted = wanted.astype(np.int64)
    homes = rng.integers(0, groups, (size.users, TASTES))
    popularity = 1.0 / np.arange(1, size.items + 1, dtype=np.float64) ** 0.8
    popularity /= popularity.sum()
    catalogue = rng.permutation(size.items)  # popular items spread over the groups
    member = 1.0 / np.arange(1, GROUP_SIZE + 1, dtype=np.float64) ** 0.7
    member /= member.sum()
    pairs = np.empty(0, dtype=np.int64)
    have = np.zeros(size.users, dtype=np.int64)
    for round_ in range(10):
        need = np.maximum(0, wanted - have)
        if need.sum() <= 0.005 * size.interactions:
            break
        draws = (need * (1.3 + round_)).astype(np.int64) + (need > 0)  # saturated users need more
        users = np.repeat(np.arange(size.users, dtype=np.int64), draws)
        group = homes[users, rng.integers(0, TASTES, users.size)]
        within = rng.choice(GROUP_SIZE, users.size, p=member)
        in_group = np.minimum(group * GROUP_SIZE + within, size.items - 1)
        anywhere = catalogue[rng.choice(size.items, users.size, p=popularity)]
        items = np.where(rng.random(users.size) < IN_GROUP, in_group, anywhere)
        pairs = np.unique(np.concatenate([pairs, users * size.items + items]))
        have = np.bincount(pairs // size.items, minlength=size.users)
    if pairs.size > size.interactions:  # the last round overshoots a little: drop pairs at random
        pairs = np.sort(rng.choice(pairs, size.interactions, replace=False))
    return pairs // size.items, pairs % size.items


def write_csv(path: Path, users: np.ndarray, items: np.ndarray, chunk: int = 1_000_000) -> None:
    with open(path, "w", encoding="utf-8") as out:
        out.write("user,item\n")
        for start in range(0, users.size, chunk):
            u, i = users[start : start + chunk].tolist(), items[start : start + chunk].tolist()
            out.write("".join(f"u{a},i{b}\n" for a, b in zip(u, i, strict=True)))


def _admin(admin_url: str):
    import psycopg2

    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    return conn


def import_into_postgres(csv_path: Path, url: str, batch_size: int) -> dict:
    """`airec import FILE --format csv` in this process, timed."""
    from airec.db import init_db, migrate
    from airec.imports import import_file

    db = init_db(url)
    db.connect()
    migrate(db)
    started = time.perf_counter()
    totals = import_file(csv_path, "csv", batch_size=batch_size, progress=False)
    seconds = time.perf_counter() - started
    (size_bytes,) = db.execute_sql("SELECT pg_database_size(current_database())").fetchone()
    db.close()
    return {**totals, "seconds": seconds, "db_bytes": int(size_bytes)}


def fit_one(args: argparse.Namespace) -> dict:
    """In a child process: read the data from the database and fit, write and store one model as a
    training run would; returns timings, peak RSS and sizes."""
    from airec.db import init_db
    from airec.training.dataset import load_dataset, preprocessed
    from airec.training.fitting import TrainingRefused, fit_and_write

    db = init_db(args.database_url)
    db.connect()
    started = time.perf_counter()
    data = preprocessed(load_dataset(), min_support=1, max_items=None)
    load_seconds = time.perf_counter() - started
    job = _fit_job(args, data)
    events: list[tuple[float, dict]] = []
    fit_started, cpu_started = time.perf_counter(), time.process_time()
    try:
        result = fit_and_write(job, progress=lambda e: _record(events, e, fit_started, args.algorithm))
    except TrainingRefused as exc:
        return {"refused": str(exc), "load_seconds": load_seconds, "peak_rss": _peak_rss()}
    total, total_cpu = time.perf_counter() - fit_started, time.process_time() - cpu_started
    folder = Path(result["folder"])
    model_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    store_seconds = _store_seconds(folder, result["version"])
    db.close()
    manifest = result["manifest"]
    return {
        "load_seconds": load_seconds,
        **_epoch_timings(events, fit_started, cpu_started),
        "total_seconds": total,
        "total_cpu_seconds": total_cpu,
        "load_average": os.getloadavg()[0],
        "refit_seconds": (manifest.get("refit") or {}).get("seconds"),
        "peak_rss": _peak_rss(),
        "model_bytes": model_bytes,
        "store_seconds": store_seconds,
        "stages": manifest.get("stages"),
        "training_seconds": manifest.get("training_seconds"),
        "ndcg@10": (manifest.get("evaluation") or {}).get("model", {}).get("ndcg@10"),
        "popularity_ndcg@10": (manifest.get("evaluation") or {}).get("popularity", {}).get("ndcg@10"),
    }


def _fit_job(args: argparse.Namespace, data):
    """The FitJob a training run would hand its child, from the command's arguments."""
    from airec.config import Settings
    from airec.training.fitting import FitJob

    params = {"epochs": args.epochs} if args.epochs and args.algorithm == "autoencoder" else {}
    settings = Settings.from_env(
        {
            "database_url": args.database_url,
            "models_dir": args.models_dir,
            "log_json": False,
            "train_threads": args.threads,
            "train_refit": not args.no_refit,
        }
    )
    return FitJob(
        algorithm=args.algorithm,
        params=params,
        settings=settings,
        X=data.X,
        items=data.items,
        baskets=False,
        manifest={"data": {"units": int(data.X.shape[0]), "items": int(data.X.shape[1])}},
    )


def _store_seconds(folder: Path, version: str) -> float:
    """Seconds to store the model's folder in the database (as AIREC_MODEL_STORE=database does); the
    stored copy is deleted afterwards."""
    from airec.db import atomic_write
    from airec.modelstore import database as dbstore

    stored = time.perf_counter()
    atomic_write(lambda: dbstore.put_folder(folder, version))
    seconds = time.perf_counter() - stored
    atomic_write(lambda: dbstore.delete(version))
    return seconds


def _epoch_timings(events: list[tuple[float, dict]], fit_started: float, cpu_started: float) -> dict:
    """Wall and CPU seconds of the epochs (not of the refit), from the progress events."""
    fit_times = [t for t, e in events if "epoch" in e and e.get("stage") != "refit" and "train_loss" in e]
    gaps = np.diff([fit_started, *fit_times])
    epoch_seconds = gaps[1:] if len(fit_times) > 1 else gaps  # the first gap includes the split
    fit_cpu = [e["cpu"] for _, e in events if "train_loss" in e and e.get("stage") != "refit"]
    cpu_gaps = np.diff([cpu_started, *fit_cpu])
    epoch_cpu = cpu_gaps[1:] if len(fit_cpu) > 1 else cpu_gaps
    return {
        "epochs": len(fit_times),
        "epochs_seconds": (fit_times[-1] - fit_started) if fit_times else None,  # split + every epoch
        "epoch_seconds": float(np.median(epoch_seconds)) if len(epoch_seconds) else None,
        "epoch_cpu_seconds": float(np.median(epoch_cpu)) if len(epoch_cpu) else None,
        "epochs_cpu_seconds": (fit_cpu[-1] - cpu_started) if fit_cpu else None,
    }


def _record(events: list, event: dict, started: float, algorithm: str) -> None:
    """Keep a progress event, and show it at once (a long fit can be judged, and extrapolated, early)."""
    now = time.perf_counter()
    events.append((now, dict(event, cpu=time.process_time())))
    numbers = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in event.items()}
    print(f"  {algorithm} +{now - started:.1f}s {numbers}", file=sys.stderr, flush=True)


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_fit(url: str, algorithm: str, models_dir: Path, args: argparse.Namespace) -> dict:
    argv = [
        sys.executable,
        "-m",
        "airec.benchmarks.scale",
        "--fit-one",
        "--database-url",
        url,
        "--algorithm",
        algorithm,
        "--models-dir",
        str(models_dir),
        "--threads",
        str(args.threads),
    ]
    if args.epochs:
        argv += ["--epochs", str(args.epochs)]
    if args.no_refit:
        argv += ["--no-refit"]
    done = subprocess.run(argv, stdout=subprocess.PIPE, text=True)  # progress goes on to stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"error": f"the fit exited with code {done.returncode} (its log is above)"}
    return json.loads(lines[-1])


def _identifier(value: str) -> str:
    """A database name prefix that is safe to put in CREATE/DROP DATABASE unquoted."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", value):
        raise argparse.ArgumentTypeError(
            f"{value!r}: use 1-41 lowercase letters, digits and underscores, not starting with a digit"
        )
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airec bench scale", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1x,10x", help=f"comma separated, of {', '.join(SIZES)}")
    parser.add_argument("--algorithms", default="autoencoder,ease")
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="cap the autoencoder's epochs (default: its own, early stopping and update cap)",
    )
    parser.add_argument(
        "--no-refit",
        action="store_true",
        help="publish the model chosen on validation without refitting it on every unit",
    )
    parser.add_argument("--threads", type=int, default=1, help="AIREC_TRAIN_THREADS of the fits")
    parser.add_argument("--batch-size", type=int, default=20000, help="interactions per import transaction")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--workdir", default=None, help="where the CSV and model folders go (a temp dir)")
    parser.add_argument("--json", default=None, help="also write every measurement to this file")
    parser.add_argument(
        "--database-prefix",
        default="airec_scale",
        type=_identifier,
        help="name prefix of the databases it creates (and drops): letters, digits, underscores",
    )
    # internal: one fit in a child process
    parser.add_argument("--fit-one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--algorithm", help=argparse.SUPPRESS)
    parser.add_argument("--models-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.fit_one:
        print(json.dumps(fit_one(args)))
        return 0
    sizes = [SIZES[name] for name in args.sizes.split(",") if name]
    algorithms = [a for a in args.algorithms.split(",") if a]
    results = []
    if args.workdir:
        Path(args.workdir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="airec-scale-", dir=args.workdir) as tmp:
        for size in sizes:
            results.append(bench_size(size, algorithms, Path(tmp), args))
            print_tables(results)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def bench_size(size: Size, algorithms: list[str], tmp: Path, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    users, items = synthesize(size)
    csv_path = tmp / f"{size.name}.csv"
    write_csv(csv_path, users, items)
    generate_seconds = time.perf_counter() - started
    name = f"{args.database_prefix}_{size.name}_{uuid.uuid4().hex[:6]}"
    admin = _admin(args.admin_url)
    admin.cursor().execute(f"CREATE DATABASE {name}")
    url = args.admin_url.rsplit("/", 1)[0] + "/" + name
    out: dict = {
        "size": size.name,
        "users": int(np.unique(users).size),
        "items": int(np.unique(items).size),
        "interactions": int(users.size),
        "generate_seconds": generate_seconds,
        "fits": {},
    }
    del users, items
    try:
        out["import"] = import_into_postgres(csv_path, url, args.batch_size)
        print(f"{size.name} import: {out['import']}", file=sys.stderr, flush=True)
        os.remove(csv_path)
        for algorithm in algorithms:
            models = tmp / f"models-{size.name}"
            out["fits"][algorithm] = run_fit(url, algorithm, models, args)
            print(f"{size.name} {algorithm}: {out['fits'][algorithm]}", file=sys.stderr, flush=True)
    finally:
        from airec.db import database

        if database.obj is not None and not database.is_closed():
            database.close()
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
    return out


if __name__ == "__main__":
    sys.exit(main())
