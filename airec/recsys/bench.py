"""Accuracy benchmark on the public datasets: every algorithm, same splits, mean over seeds.

Protocol: units (in the canonical order of `data.canonical_matrix`) are split into train / validation /
test (15% each held out, at most 5000 each) by seed; held-out units get either strong-generalisation
fold-in (80/20) or leave-one-out (baskets), see `evaluation.choose_protocol`. Hyper-parameters are chosen
on validation, numbers are reported on test. Preprocessing (`data.preprocess`), the same for every
algorithm: items seen in fewer than `MIN_SUPPORT` units are dropped (as in Liang et al. 2018), and at
most `MAX_ITEMS` of the most frequent items are kept so that the items x items models (EASE) fit the
time budget. The service trains and evaluates the same way: seed s here is AIREC_TRAIN_SEED=s there
(split and model seed), with AIREC_TRAIN_MIN_ITEM_SUPPORT / AIREC_TRAIN_MAX_ITEMS set to match.

    python -m airec.recsys.bench --datasets ml-100k --seeds 1
    python -m airec.recsys.bench --file u.data --format movielens --seed-offset 42 --min-support 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airec.recsys.algorithms import ALGORITHMS
from airec.recsys.data import preprocess
from airec.recsys.datasets import (
    FILE_FORMATS,
    LOADERS,
    MIN_RATING,
    Dataset,
    DatasetMissing,
    load_dataset,
    load_file,
)
from airec.recsys.evaluation import DEFAULT_KS, choose_protocol, evaluate, make_split

MIN_SUPPORT = 5
MAX_ITEMS = 4000
BASELINES = ("popularity", "itemknn", "ease")
COLUMNS = {
    "strong": ("recall@20", "recall@50", "ndcg@10", "ndcg@100"),
    "loo": ("hit_rate@10", "ndcg@10"),
}
HEADLINE = {"strong": "ndcg@100", "loo": "ndcg@10"}


def prepare(
    X: sp.csr_matrix, min_support: int = MIN_SUPPORT, max_items: int | None = MAX_ITEMS
) -> sp.csr_matrix:
    """Drop rare items, then keep the most frequent ones (same data for every algorithm)."""
    return preprocess(X, min_support=min_support, max_items=max_items)[0]


def _make(algorithm: str, seed: int, params: dict | None = None):
    """The model as the service builds it for AIREC_TRAIN_SEED=seed: defaults, the seed, `params`."""
    cls = ALGORITHMS[algorithm]
    kwargs = {"seed": seed} if "seed" in cls().get_params() else {}
    kwargs.update(params or {})
    return cls(**kwargs)


def bench_dataset(
    name: str,
    seeds: int,
    algorithms: Sequence[str],
    root: Path | None = None,
    log: Callable[[str], None] | None = None,
    **options,
) -> dict:
    """Metrics (mean and per seed) and training seconds of each algorithm on one named dataset."""
    return bench_data(load_dataset(name, root), seeds, algorithms, log=log, **options)


def bench_data(
    ds: Dataset,
    seeds: int,
    algorithms: Sequence[str],
    *,
    seed_offset: int = 0,
    min_support: int = MIN_SUPPORT,
    max_items: int | None = MAX_ITEMS,
    params: dict[str, dict] | None = None,
    log: Callable[[str], None] | None = None,
    refit: bool = False,
) -> dict:
    """Metrics (mean and per seed) and training seconds of each algorithm on a loaded dataset.

    Seeds run from `seed_offset` to `seed_offset + seeds - 1`; `params` maps an algorithm to
    constructor arguments (e.g. {"autoencoder": {"epochs": 5}}). With `refit`, each model chosen on
    validation is fitted again on the training and validation units together before the test, as the
    service does with every unit it holds (AIREC_TRAIN_REFIT).
    """
    X = prepare(ds.X, min_support, max_items)
    protocol = choose_protocol(X, ds.kind)
    columns = COLUMNS[protocol]
    runs: dict[str, list[dict]] = {a: [] for a in algorithms}
    for seed in range(seed_offset, seed_offset + seeds):
        split = make_split(X, protocol, seed=seed)
        for algorithm in algorithms:
            model = _make(algorithm, seed, (params or {}).get(algorithm))
            row, result = _fit_and_test(model, split, columns, refit)
            runs[algorithm].append({**row, "seed": seed, "test": result})
            if log:
                numbers = " ".join(f"{k}={v:.4f}" for k, v in row.items())
                log(f"  {ds.name} seed {seed} {algorithm}: {numbers}")
    keys = (*columns, "train_s")
    mean = {a: {k: float(np.mean([r[k] for r in rs])) for k in keys} for a, rs in runs.items()}
    out = {
        "protocol": protocol,
        "shape": list(X.shape),
        "kind": ds.kind,
        "columns": list(columns),
        "mean": mean,
        "runs": runs,
        "refit": refit,
    }
    ratio = _ratio_to_best_baseline(mean, HEADLINE[protocol])
    if ratio is not None:
        out["ratio"] = ratio
    return out


def _fit_and_test(model, split, columns: Sequence[str], refit: bool) -> tuple[dict, dict]:
    """Fit on the split's training units (choosing on validation), refit on both if asked, test:
    (the table's columns and train_s, every metric of the test)."""
    start = time.perf_counter()
    model.fit(split.train, validation=split.validation)
    if refit:
        model = model.refit_copy()
        model.fit(split.refit_rows)
    seconds = time.perf_counter() - start
    result = evaluate(model, *split.test, ks=DEFAULT_KS)
    row = {c: result[c] for c in columns}
    row["train_s"] = seconds
    return row, result


def _ratio_to_best_baseline(mean: dict[str, dict], headline: str) -> dict | None:
    """The autoencoder's headline metric over the best baseline's, when both were benched."""
    baselines = [a for a in mean if a in BASELINES]
    if "autoencoder" not in mean or not baselines:
        return None
    best = max(baselines, key=lambda a: mean[a][headline])
    return {
        "metric": headline,
        "best_baseline": best,
        "value": mean["autoencoder"][headline] / max(mean[best][headline], 1e-12),
    }


def format_table(name: str, res: dict) -> str:
    """Plain aligned text table for one dataset."""
    columns = res["columns"] + ["train_s"]
    units, items = res["shape"]
    refit = ", refit on train+validation" if res.get("refit") else ""
    head = f"{name}  ({res['kind']}, {units} units x {items} items, protocol={res['protocol']}{refit})"
    width = max(len(a) for a in res["mean"]) + 2
    lines = [head, "algorithm".ljust(width) + "".join(c.rjust(12) for c in columns)]
    for algorithm, row in res["mean"].items():
        cells = "".join((f"{row[c]:.1f}" if c == "train_s" else f"{row[c]:.4f}").rjust(12) for c in columns)
        lines.append(algorithm.ljust(width) + cells)
    if "ratio" in res:
        r = res["ratio"]
        lines.append(f"autoencoder / best baseline ({r['best_baseline']}) on {r['metric']}: {r['value']:.3f}")
    return "\n".join(lines)


def run_accuracy_bench(
    datasets: Sequence[str] | None = None,
    seeds: int = 3,
    algorithms: Sequence[str] | None = None,
    out: Callable[[str], None] = print,
    root: Path | None = None,
    verbose: bool = False,
    *,
    files: Sequence[tuple[Path, str]] = (),
    min_rating: float = MIN_RATING,
    **options,
) -> dict:
    """Run the benchmark, print one table per dataset through `out`, return all numbers.

    `files` are (path, format) pairs benched besides (or, when `datasets` is None, instead of) the named
    datasets; `options` go to `bench_data` (seed_offset, min_support, max_items, params).
    """
    datasets = list(datasets) if datasets is not None else ([] if files else list(LOADERS))
    algorithms = list(algorithms or ALGORITHMS)
    sources: list[tuple[str, Callable[[], Dataset]]] = [
        (name, lambda name=name: load_dataset(name, root)) for name in datasets
    ]
    sources += [
        (Path(path).name, lambda path=path, fmt=fmt: load_file(path, fmt, min_rating=min_rating))
        for path, fmt in files
    ]
    results: dict = {}
    start = time.perf_counter()
    seed_offset = int(options.get("seed_offset", 0))
    for name, load in sources:
        t0 = time.perf_counter()
        try:
            res = bench_data(load(), seeds, algorithms, log=out if verbose else None, **options)
        except DatasetMissing as exc:
            results[name] = {"skipped": str(exc)}
            out(f"{name}: skipped ({exc})\n")
            continue
        res["seconds"] = time.perf_counter() - t0
        results[name] = res
        seed_text = f"seed {seed_offset}" if seeds == 1 else f"seeds {seed_offset}-{seed_offset + seeds - 1}"
        out(format_table(name, res) + f"\n({res['seconds']:.0f} s, mean over {seed_text})\n")
    results["total_seconds"] = time.perf_counter() - start
    out(f"total: {results['total_seconds']:.0f} s")
    return results


def _names(values: Sequence[str] | None) -> list[str] | None:
    """Accept both `--algorithms ease popularity` and `--algorithms ease,popularity`."""
    if values is None:
        return None
    return [name for value in values for name in value.split(",") if name]


def _parser() -> argparse.ArgumentParser:
    """`airec bench accuracy`'s arguments."""
    parser = argparse.ArgumentParser(prog="airec bench accuracy", description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=None, help=f"any of: {', '.join(LOADERS)}")
    parser.add_argument(
        "--file",
        type=Path,
        action="append",
        default=[],
        help="bench this file instead (with --format); repeatable",
    )
    parser.add_argument(
        "--format",
        choices=list(FILE_FORMATS),
        default="movielens",
        help="format of --file, as for `airec import`",
    )
    parser.add_argument(
        "--min-rating",
        type=float,
        default=MIN_RATING,
        help="movielens positives: rating >= this (as `airec import --min-rating`)",
    )
    parser.add_argument("--algorithms", nargs="*", default=None, help=f"any of: {', '.join(ALGORITHMS)}")
    parser.add_argument("--seeds", type=int, default=3, help="how many seeds")
    parser.add_argument(
        "--seed-offset",
        type=int,
        default=0,
        help="first seed (seed s matches the service's AIREC_TRAIN_SEED=s)",
    )
    parser.add_argument(
        "--min-support",
        type=int,
        default=MIN_SUPPORT,
        help="drop items seen in fewer units (AIREC_TRAIN_MIN_ITEM_SUPPORT)",
    )
    parser.add_argument(
        "--max-items",
        type=int,
        default=MAX_ITEMS,
        help="keep at most this many most frequent items, 0 = all (AIREC_TRAIN_MAX_ITEMS)",
    )
    parser.add_argument(
        "--params", default=None, help='JSON arguments per algorithm, e.g. \'{"autoencoder": {"epochs": 5}}\''
    )
    parser.add_argument(
        "--refit",
        action="store_true",
        help="refit each chosen model on train+validation, then test (AIREC_TRAIN_REFIT)",
    )
    parser.add_argument("--root", type=Path, default=None, help="datasets folder")
    parser.add_argument("--verbose", action="store_true", help="print every seed's numbers")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    params = json.loads(args.params) if args.params else None
    well_formed = isinstance(params, dict) and all(isinstance(v, dict) for v in params.values())
    if params is not None and not well_formed:
        parser.error("--params must be a JSON object of objects, keyed by algorithm")
    run_accuracy_bench(
        _names(args.datasets),
        args.seeds,
        _names(args.algorithms),
        root=args.root,
        verbose=args.verbose,
        out=lambda s: print(s, flush=True),
        files=[(path, args.format) for path in args.file],
        min_rating=args.min_rating,
        seed_offset=args.seed_offset,
        min_support=args.min_support,
        max_items=args.max_items or None,
        params=params,
        refit=args.refit,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
