"""Latency across catalogue sizes: the default autoencoder at 1k-100k items, served by real gunicorn.

Each size gets a synthetic planted matrix (units take 3-8 items of one group of 10), an autoencoder
fitted in this process (one epoch: latency depends on the shapes, not on how well it learned), with
its linear path exactly when the service would give it one: EASE works on the smaller side of the
matrix and stops when both units and items exceed AIREC_EASE_MAX_ITEMS (20,000). Units are set to
outnumber items up to 20k items (the common case: the linear path is the primal items x items B),
and to 25,000 above, where B would be too large and the network serves alone.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airec.auth.roles import Role
from airec.benchmarks.load_inputs import make_keys, write_bodies
from airec.benchmarks.server import Gunicorn
from airec.benchmarks.wrk import rss_mb, run_wrk

EASE_LIMIT = 20000


@dataclass
class CatalogueRow:
    items: int
    units: int
    linear: str
    fit_seconds: float
    p50: float
    p99: float
    rps: float
    rss_mb: float
    errors: int


def planted(items: int, units: int, seed: int = 0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    groups = items // 10
    sizes = rng.integers(3, 9, size=units)
    group = rng.integers(0, groups, size=units)
    rows = np.repeat(np.arange(units), sizes)
    picks = [g * 10 + rng.choice(10, size=s, replace=False) for g, s in zip(group, sizes, strict=True)]
    cols = np.concatenate(picks)
    return sp.csr_matrix((np.ones(cols.size, np.float32), (rows, cols)), shape=(units, items))


def fit_folder(models_dir: Path, items: int) -> tuple[int, str, float]:
    """Fit and write a model folder; returns (units, linear path, seconds)."""
    from airec.modelstore.folders import new_version, write_model
    from airec.recsys.algorithms import AutoEncoder

    units = items + 500 if items <= EASE_LIMIT else EASE_LIMIT + 5000
    X = planted(items, units)
    started = time.perf_counter()
    if items <= EASE_LIMIT:
        model = AutoEncoder(epochs=1, linear_lam=500.0, linear_weight=1.0)
        model.fit(X)
    else:
        # Both sides over the limit: the service fits no linear path. The network's shape does not
        # depend on the units, so it is fitted on 2,000 of them (a full epoch took minutes).
        model = AutoEncoder(epochs=1, linear_path=False)
        model.fit(X[:2000])
    seconds = time.perf_counter() - started
    linear = f"EASE {model.linear_model.form}" if model.linear_model is not None else "off (over the limit)"
    version = new_version("autoencoder")
    popularity = np.asarray(X.sum(axis=0)).ravel()
    write_model(
        models_dir,
        version=version,
        model=model,
        items=[f"i{j}" for j in range(items)],
        popularity=popularity,
        manifest={"algorithm": "autoencoder"},
    )
    return units, linear, seconds


def measure(items: int, *, seconds: float, workdir: Path, log) -> CatalogueRow:
    where = Path(tempfile.mkdtemp(prefix=f"catalogue-{items}-", dir=workdir))
    units, linear, fit_seconds = fit_folder(where / "models", items)
    log(f"  {items} items: fitted in {fit_seconds:.0f} s ({linear})")
    database_url = f"sqlite:///{where}/airec.db"
    keys = make_keys(database_url)
    rng = np.random.default_rng(1)
    sets = [[f"i{g * 10 + j}" for j in range(10)] for g in rng.integers(0, items // 10, size=200)]
    bodies = write_bodies(where / "bodies.txt", sets)
    env = {"AIREC_AUTH": "on"}
    with Gunicorn(where, workers=2, database_url=database_url, env=env, startup_timeout=300) as server:
        pids = server.worker_pids()
        url = server.url + "/api/v1/recommendations"
        common = {"key": keys[Role.READ], "method": "POST", "bodies": bodies, "pids": pids}
        run_wrk(url, seconds=2, connections=2, **common)  # warm-up
        light = run_wrk(url, seconds=seconds, connections=2, threads=1, **common)
        rss = float(np.mean([rss_mb(pid) for pid in pids]))
    return CatalogueRow(items, units, linear, fit_seconds, light.p50, light.p99, light.rps, rss, light.errors)


def format_rows(rows: list[CatalogueRow]) -> str:
    head = (
        f"{'items':>8}{'units':>8}  {'linear path':<22}{'p50 ms':>8}{'p99 ms':>8}{'req/s':>8}"
        f"{'RSS/worker MB':>15}{'errors':>8}"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"{r.items:>8}{r.units:>8}  {r.linear:<22}{r.p50:>8.2f}{r.p99:>8.2f}{r.rps:>8.0f}"
            f"{r.rss_mb:>15.0f}{r.errors:>8}"
        )
    return "\n".join(lines)
