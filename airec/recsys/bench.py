"""Accuracy benchmark on the public datasets: every algorithm, same splits, mean over seeds.

Protocol: units are split into train / validation / test (15% each held out) by seed; held-out units
(at most 5000 each) get either strong-generalisation fold-in (80/20) or leave-one-out (baskets), see
`evaluation.choose_protocol`. Hyper-parameters are chosen on validation, numbers are reported on test.
Preprocessing, the same for every algorithm: items seen in fewer than `MIN_SUPPORT` units are dropped
(as in Liang et al. 2018), and at most `MAX_ITEMS` of the most frequent items are kept so that the
items x items models (EASE) fit the time budget.

    python -m airec.recsys.bench --datasets ml-100k --seeds 1
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airec.recsys.data import filter_items
from airec.recsys.datasets import LOADERS, DatasetMissing, load_dataset
from airec.recsys.evaluation import choose_protocol, evaluate, make_split
from airec.recsys.models import ALGORITHMS

MIN_SUPPORT = 5
MAX_ITEMS = 4000
BASELINES = ("popularity", "itemknn", "ease")
COLUMNS = {
    "strong": ("recall@20", "recall@50", "ndcg@10", "ndcg@100"),
    "loo": ("hit_rate@10", "ndcg@10"),
}
HEADLINE = {"strong": "ndcg@100", "loo": "ndcg@10"}


def prepare(X: sp.csr_matrix) -> sp.csr_matrix:
    """Drop rare items, then keep the MAX_ITEMS most frequent ones (same data for every algorithm)."""
    X, _ = filter_items(X, MIN_SUPPORT)
    counts = np.asarray(X.sum(axis=0)).ravel()
    if X.shape[1] > MAX_ITEMS:
        keep = np.sort(np.argsort(-counts, kind="stable")[:MAX_ITEMS])
        X = sp.csr_matrix(X[:, keep])
    return X


def _make(algorithm: str, seed: int):
    cls = ALGORITHMS[algorithm]
    model = cls()
    if "seed" in model.get_params():
        model = cls(seed=seed)
    return model


def bench_dataset(
    name: str, seeds: int, algorithms: Sequence[str], root: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Metrics (mean and per seed) and training seconds of each algorithm on one dataset."""
    ds = load_dataset(name, root)
    X = prepare(ds.X)
    protocol = choose_protocol(X, ds.kind)
    columns = COLUMNS[protocol]
    runs: dict[str, list[dict]] = {a: [] for a in algorithms}
    for seed in range(seeds):
        split = make_split(X, protocol, seed=seed)
        for algorithm in algorithms:
            model = _make(algorithm, seed)
            start = time.perf_counter()
            model.fit(split.train, validation=split.validation)
            seconds = time.perf_counter() - start
            result = evaluate(model, *split.test, ks=(10, 20, 50, 100))
            row = {c: result[c] for c in columns}
            row["train_s"] = seconds
            runs[algorithm].append(row)
            if log:
                log(f"  {name} seed {seed} {algorithm}: " + " ".join(f"{k}={v:.4f}" for k, v in row.items()))
    mean = {a: {k: float(np.mean([r[k] for r in rs])) for k in rs[0]} for a, rs in runs.items()}
    out = {"protocol": protocol, "shape": list(X.shape), "kind": ds.kind, "columns": list(columns),
           "mean": mean, "runs": runs}
    headline = HEADLINE[protocol]
    baselines = [a for a in algorithms if a in BASELINES]
    if "autoencoder" in mean and baselines:
        best = max(baselines, key=lambda a: mean[a][headline])
        out["ratio"] = {"metric": headline, "best_baseline": best,
                        "value": mean["autoencoder"][headline] / max(mean[best][headline], 1e-12)}
    return out


def format_table(name: str, res: dict) -> str:
    """Plain aligned text table for one dataset."""
    columns = res["columns"] + ["train_s"]
    units, items = res["shape"]
    head = f"{name}  ({res['kind']}, {units} units x {items} items, protocol={res['protocol']})"
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
) -> dict:
    """Run the benchmark, print one table per dataset through `out`, return all numbers."""
    datasets = list(datasets or LOADERS)
    algorithms = list(algorithms or ALGORITHMS)
    results: dict = {}
    start = time.perf_counter()
    for name in datasets:
        t0 = time.perf_counter()
        try:
            res = bench_dataset(name, seeds, algorithms, root, log=out if verbose else None)
        except DatasetMissing as exc:
            results[name] = {"skipped": str(exc)}
            out(f"{name}: skipped ({exc})\n")
            continue
        res["seconds"] = time.perf_counter() - t0
        results[name] = res
        out(format_table(name, res) + f"\n({res['seconds']:.0f} s, mean over {seeds} seed(s))\n")
    results["total_seconds"] = time.perf_counter() - start
    out(f"total: {results['total_seconds']:.0f} s")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="*", default=None, help=f"any of: {', '.join(LOADERS)}")
    parser.add_argument("--algorithms", nargs="*", default=None, help=f"any of: {', '.join(ALGORITHMS)}")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--root", type=Path, default=None, help="datasets folder")
    parser.add_argument("--verbose", action="store_true", help="print every seed's numbers")
    args = parser.parse_args(argv)
    run_accuracy_bench(args.datasets, args.seeds, args.algorithms, root=args.root, verbose=args.verbose,
                       out=lambda s: print(s, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
