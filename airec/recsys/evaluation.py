"""The one evaluation path shared by the service, the CLI and the benchmark.

Protocol choice (`choose_protocol`):
  * "loo" (leave-one-out) when the data are baskets, or when units hold fewer than
    `LOO_MAX_MEAN_SIZE` items on average: hiding 20% of a 3-item basket hides nothing sensible.
  * "strong" (strong generalisation, 80/20 fold-in of held-out units) otherwise.
Either way, validation and test units are disjoint from the training units and from each other.
Models pick hyper-parameters on the validation pair with `selection_metric`: NDCG@10 when each unit
hides one item (leave-one-out), NDCG@100 otherwise, matching what the benchmark reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from airec.recsys.data import binarize, fold_in_split, leave_each_out, leave_one_out, split_units
from airec.recsys.metrics import per_row_metrics

LOO_MAX_MEAN_SIZE = 15.0
DEFAULT_KS = (10, 20, 50, 100)
#: Share of units held out for validation, and again for test; the benchmark's and the service's default.
HOLDOUT_FRACTION = 0.15
#: At most this many units each for validation and test: beyond a few thousand the estimate is tight.
MAX_HOLDOUT = 5000
#: Leave-one-out validation hides each item of a unit in turn (up to this many cases in all), so that
#: choices made on it (epochs, blend weight, lambda) follow the data rather than the noise of one draw.
VALIDATION_CASES = 4 * MAX_HOLDOUT

Pair = tuple[sp.csr_matrix, sp.csr_matrix]


@dataclass
class Split:
    """Training rows plus (input, hidden) pairs for validation and test."""

    train: sp.csr_matrix
    validation: Pair
    test: Pair
    protocol: str
    #: Row indices of the train, validation and test units in the split matrix.
    units: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    #: Every unit but the test ones, whole: what a refit learns from.
    refit_rows: sp.csr_matrix | None = None


def choose_protocol(X: sp.csr_matrix, kind: str | None = None) -> str:
    """'loo' for baskets or small units (mean size < LOO_MAX_MEAN_SIZE), else 'strong'."""
    if kind == "baskets":
        return "loo"
    if kind in ("ratings", "implicit"):
        return "strong"
    sizes = np.diff(sp.csr_matrix(X).indptr)
    mean = float(sizes[sizes > 0].mean()) if np.any(sizes > 0) else 0.0
    return "loo" if mean < LOO_MAX_MEAN_SIZE else "strong"


def selection_metric(X_hidden: sp.csr_matrix) -> str:
    """Metric used to choose hyper-parameters: ndcg@10 for one hidden item per unit, else ndcg@100."""
    n_hidden = np.diff(sp.csr_matrix(X_hidden).indptr)
    n_hidden = n_hidden[n_hidden > 0]
    return "ndcg@10" if n_hidden.size and n_hidden.max() <= 1 else "ndcg@100"


def make_split(
    X: sp.csr_matrix,
    protocol: str = "auto",
    *,
    holdout_fraction: float = HOLDOUT_FRACTION,
    max_holdout: int | None = MAX_HOLDOUT,
    hidden_fraction: float = 0.2,
    seed: int = 0,
    kind: str | None = None,
) -> Split:
    """Split units into train / validation / test and hide items of the held-out units.

    All randomness derives from `seed`, so every algorithm compared under a seed sees the same split.
    """
    X = binarize(X)
    if protocol == "auto":
        protocol = choose_protocol(X, kind)
    if protocol not in ("strong", "loo"):
        raise ValueError(f"unknown protocol {protocol!r} (expected 'strong', 'loo' or 'auto')")
    train, val, test = split_units(
        X.shape[0], holdout_fraction=holdout_fraction, max_holdout=max_holdout, seed=seed
    )

    def hide(rows: np.ndarray, sub_seed: int) -> Pair:
        if protocol == "loo":
            return leave_one_out(X[rows], seed=sub_seed)
        return fold_in_split(X[rows], hidden_fraction=hidden_fraction, seed=sub_seed)

    validation = (
        leave_each_out(X[val], seed=seed + 1000, max_cases=VALIDATION_CASES)
        if protocol == "loo"
        else hide(val, seed + 1000)
    )
    known = np.sort(np.concatenate([train, val]))
    return Split(X[train], validation, hide(test, seed + 2000), protocol, (train, val, test), X[known])


def evaluate_scorer(
    score_fn: Callable[..., np.ndarray],
    X_input: sp.csr_matrix,
    X_hidden: sp.csr_matrix,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 1024,
    *,
    with_offset: bool = False,
) -> dict:
    """Mean metrics of any scoring function, scoring `batch_size` rows at a time to bound memory.
    With `with_offset`, it is called as score_fn(rows, index of the first row) (e.g. to look up stored
    answers)."""
    X_input = sp.csr_matrix(X_input)
    X_hidden = sp.csr_matrix(X_hidden)
    ks = tuple(ks)
    parts: dict[str, list] = {}
    for start in range(0, X_input.shape[0], batch_size):
        stop = min(start + batch_size, X_input.shape[0])
        hidden = X_hidden[start:stop]
        if hidden.nnz == 0:
            continue
        scores = score_fn(X_input[start:stop], start) if with_offset else score_fn(X_input[start:stop])
        for name, values in per_row_metrics(scores, X_input[start:stop], hidden, ks).items():
            parts.setdefault(name, []).append(values)
    result: dict = {}
    n_units = 0
    for name, chunks in parts.items():
        values = np.concatenate(chunks)
        n_units = values.size
        result[name] = float(values.mean()) if values.size else 0.0
    result["n_units"] = int(n_units)
    return result


def evaluate(
    model,
    X_input: sp.csr_matrix,
    X_hidden: sp.csr_matrix,
    ks: Iterable[int] = DEFAULT_KS,
    batch_size: int = 1024,
) -> dict:
    """{"recall@20": .., "ndcg@100": .., "hit_rate@10": .., "n_units": ..} for a fitted model."""
    return evaluate_scorer(model.score, X_input, X_hidden, ks, batch_size)


def validation_score(
    score_fn: Callable[[sp.csr_matrix], np.ndarray], validation: Pair, metric: str | None = None
) -> float:
    """One number to maximise when choosing hyper-parameters (see `selection_metric`)."""
    X_in, X_hid = validation
    metric = metric or selection_metric(X_hid)
    k = int(metric.split("@")[1])
    return evaluate_scorer(score_fn, X_in, X_hid, ks=(k,))[metric]
