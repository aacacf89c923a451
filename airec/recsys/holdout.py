"""The user's view of a dataset: the units a service receives, the held-out units it is asked about,
and the strong simple baselines fitted on exactly what the service received.

`airec bench service` POSTs the received units to a real service and queries it with the held-out units'
fold-in items; this module holds everything about that protocol that needs no service: the split (the
benchmark's test units for the same seed), the baselines with their best hyper-parameters picked on the
held-out units themselves (an oracle, so a bar set high), and metrics of ranked answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from airec.recsys.algorithms import EASE, ItemKNN, Popularity
from airec.recsys.data import fold_in_split, leave_one_out, split_units
from airec.recsys.evaluation import (
    DEFAULT_KS,
    HOLDOUT_FRACTION,
    MAX_HOLDOUT,
    choose_protocol,
    evaluate_scorer,
)

#: The oracle grids: EASE's lambda and item-kNN's neighbours, best of each on the held-out units.
EASE_LAMBDAS = (50.0, 200.0, 500.0, 1000.0)
KNN_NEIGHBOURS = (10, 25, 50, 100, 200, 400, 800)
HEADLINE = {"strong": "ndcg@100", "loo": "ndcg@10"}
COLUMNS = {"strong": ("recall@20", "recall@50", "ndcg@10", "ndcg@100"), "loo": ("hit_rate@10", "ndcg@10")}


@dataclass
class Holdout:
    """Received rows and held-out (input, hidden) pairs, all in the dataset's item columns."""

    X: sp.csr_matrix
    received: np.ndarray  # row indices of the units the service gets, in dataset order
    test_input: sp.csr_matrix
    test_hidden: sp.csr_matrix
    protocol: str

    @property
    def X_received(self) -> sp.csr_matrix:
        return self.X[self.received]

    @property
    def received_items(self) -> np.ndarray:
        """Columns of the items the service has heard of (those in some received unit)."""
        return np.flatnonzero(np.asarray(self.X_received.sum(axis=0)).ravel() > 0)


def last_items(X: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Each row keeps only its last `n` stored items (column order)."""
    X = sp.csr_matrix(X, copy=True)
    X.sort_indices()
    for row in range(X.shape[0]):
        start, end = X.indptr[row], X.indptr[row + 1]
        if end - start > n:
            X.data[start : end - n] = 0
    X.eliminate_zeros()
    return X


def make_holdout(X: sp.csr_matrix, kind: str | None, seed: int, max_input: int | None = None) -> Holdout:
    """The benchmark's test units for `seed` are held out (their items hidden as the benchmark hides
    them); every other unit, validation units included, is what a user would have POSTed. With
    `max_input`, a held-out unit shows at most that many of its items (its last ones), as a client of a
    service with a per-request limit must send; every system sees the same capped input."""
    protocol = choose_protocol(X, kind)
    train, validation, test = split_units(
        X.shape[0], holdout_fraction=HOLDOUT_FRACTION, max_holdout=MAX_HOLDOUT, seed=seed
    )
    hide = leave_one_out if protocol == "loo" else fold_in_split
    kwargs = {} if protocol == "loo" else {"hidden_fraction": 0.2}
    test_input, test_hidden = hide(X[test], seed=seed + 2000, **kwargs)
    if max_input is not None:
        test_input = last_items(test_input, max_input)
    return Holdout(X, np.sort(np.concatenate([train, validation])), test_input, test_hidden, protocol)


def metrics_of_scores(
    scores_fn: Callable[[sp.csr_matrix, int], np.ndarray],
    X_input: sp.csr_matrix,
    X_hidden: sp.csr_matrix,
    ks: Sequence[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Mean metrics of `scores_fn(input_rows, first_row)` (full-catalogue scores, input not masked)."""
    return evaluate_scorer(scores_fn, X_input, X_hidden, ks, with_offset=True)


def ranked_scores(ranked: Sequence[np.ndarray], n_items: int) -> Callable[[sp.csr_matrix, int], np.ndarray]:
    """Scores that reproduce given rankings (best first); unranked items score 0, below every ranked one."""

    def scores(rows: sp.csr_matrix, start: int) -> np.ndarray:
        out = np.zeros((rows.shape[0], n_items), dtype=np.float32)
        for r in range(rows.shape[0]):
            order = np.asarray(ranked[start + r], dtype=np.int64)
            out[r, order] = np.arange(len(order), 0, -1, dtype=np.float32)
        return out

    return scores


def received_scorer(model, holdout: Holdout) -> Callable[[sp.csr_matrix, int], np.ndarray]:
    """Scores of a model fitted on the received units' known items, in dataset columns. Unknown items
    score -inf; an input with no known item gets the received popularity, as the service answers it."""
    cols = holdout.received_items
    counts = np.asarray(holdout.X_received[:, cols].sum(axis=0), dtype=np.float32).ravel()

    def scores(rows: sp.csr_matrix, start: int) -> np.ndarray:
        inner = sp.csr_matrix(rows[:, cols])
        part = model.score(inner)
        empty = np.diff(inner.indptr) == 0
        part[empty] = counts
        out = np.full((rows.shape[0], holdout.X.shape[1]), -np.inf, dtype=np.float32)
        out[:, cols] = part
        return out

    return scores


def baselines(
    holdout: Holdout, ks: Sequence[int] = DEFAULT_KS, log: Callable[[str], None] | None = None
) -> dict[str, dict]:
    """EASE and item-kNN at their best hyper-parameter on the held-out units, and popularity, all fitted
    on exactly the received units: {"ease": {"metrics", "param"}, "itemknn": ..., "popularity": ...}."""
    X = holdout.X_received[:, holdout.received_items]
    headline = HEADLINE[holdout.protocol]
    results: dict[str, dict] = {}

    def run(model) -> dict:
        model.fit(X)
        return metrics_of_scores(received_scorer(model, holdout), holdout.test_input, holdout.test_hidden, ks)

    candidates = {
        "ease": [(lam, EASE(lam=lam, max_items=max(X.shape))) for lam in EASE_LAMBDAS],
        "itemknn": [(n, ItemKNN(n_neighbors=n)) for n in KNN_NEIGHBOURS],
        "popularity": [(None, Popularity())],
    }
    for name, options in candidates.items():
        best = None
        for param, model in options:
            metrics = run(model)
            if log:
                log(f"    {name} {param}: {headline}={metrics[headline]:.4f}")
            if best is None or metrics[headline] > best["metrics"][headline]:
                best = {"metrics": metrics, "param": param}
        results[name] = best
    return results
