"""Binary unit x item matrices and the fixed-seed splits used to evaluate models on them.

Everything here is deterministic given a seed, so that every algorithm of a benchmark run sees
exactly the same training rows and the same hidden items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

#: A unit's stable key: a user's name (str), or an anonymous basket's number (int), its position in the
#: source (1-based line/basket order in a file, the record id in the service, which a fresh import
#: assigns in file order).
UnitKey = str | int


def build_matrix(
    unit_codes: np.ndarray,
    item_codes: np.ndarray,
    *,
    n_units: int | None = None,
    n_items: int | None = None,
) -> sp.csr_matrix:
    """Binary CSR matrix from parallel integer code arrays; repeated (unit, item) pairs count once.

    Interactions are treated as implicit positives, so quantities and repeats carry no weight.
    """
    units = np.asarray(unit_codes, dtype=np.int64)
    items = np.asarray(item_codes, dtype=np.int64)
    if units.shape != items.shape:
        raise ValueError("unit_codes and item_codes must have the same length")
    if units.size and (units.min() < 0 or items.min() < 0):
        raise ValueError("codes must be non-negative integers")
    n_units = int(units.max() + 1) if n_units is None and units.size else int(n_units or 0)
    n_items = int(items.max() + 1) if n_items is None and items.size else int(n_items or 0)
    data = np.ones(units.size, dtype=np.float32)
    X = sp.csr_matrix((data, (units, items)), shape=(n_units, n_items), dtype=np.float32)
    return binarize(X)


def as_csr32(X) -> sp.csr_matrix:
    """X as float32 CSR; X itself when it already is one (scipy would build a new object each call)."""
    if isinstance(X, sp.csr_matrix) and X.dtype == np.float32:
        return X
    return sp.csr_matrix(X, dtype=np.float32)


def binarize(X: sp.spmatrix) -> sp.csr_matrix:
    """Canonical binary float32 CSR (sorted indices, no explicit zeros, every stored value 1)."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    X.sum_duplicates()
    X.eliminate_zeros()
    X.data[:] = 1.0
    X.sort_indices()
    return X


def fit_matrix(X: sp.spmatrix) -> sp.csr_matrix:
    """What a fit learns from: canonical float32 CSR (sorted indices, no explicit zeros) with its values
    kept. Every loader and split binarizes, so that is the binary matrix as before; a matrix weighted by
    typed feedback (AIREC_EVENT_WEIGHTS: a cell holds its events' largest weight) keeps its weights."""
    X = sp.csr_matrix(X, dtype=np.float32, copy=True)
    X.sum_duplicates()
    X.eliminate_zeros()
    X.sort_indices()
    return X


def encode(values: list) -> tuple[np.ndarray, list]:
    """Map arbitrary hashable values to dense codes 0..n-1 in first-seen order (vocabulary kept)."""
    vocab: dict = {}
    codes = np.fromiter((vocab.setdefault(v, len(vocab)) for v in values), dtype=np.int64, count=len(values))
    return codes, list(vocab)


def split_units(
    n_units: int, *, holdout_fraction: float = 0.15, max_holdout: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Disjoint (train, validation, test) unit indices; validation and test get `holdout_fraction` each
    (at most `max_holdout` units each: beyond a few thousand units the estimate is tight enough).

    Splitting whole units (not interactions) gives *strong generalisation*: evaluated units are never
    seen in training, which is what a service scoring new item sets faces.
    """
    if not 0.0 < holdout_fraction < 0.5:
        raise ValueError("holdout_fraction must be in (0, 0.5)")
    perm = np.random.default_rng(seed).permutation(n_units)
    n_hold = max(1, int(round(n_units * holdout_fraction)))
    if max_holdout:
        n_hold = min(n_hold, int(max_holdout))
    if 2 * n_hold >= n_units:
        raise ValueError(f"too few units ({n_units}) to hold out {n_hold} for validation and test")
    val = np.sort(perm[:n_hold])
    test = np.sort(perm[n_hold : 2 * n_hold])
    train = np.sort(perm[2 * n_hold :])
    return train, val, test


def _rows_with_min_items(X: sp.csr_matrix, min_items: int) -> sp.csr_matrix:
    sizes = np.diff(X.indptr)
    return X[np.flatnonzero(sizes >= min_items)]


def _split_rows(X: sp.csr_matrix, n_hidden: np.ndarray, seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Hide `n_hidden[r]` random items of each row r; the rest become the input."""
    rng = np.random.default_rng(seed)
    sizes = np.diff(X.indptr)
    # One uniform key per stored entry; within each row the n_hidden smallest keys are hidden.
    keys = rng.random(X.nnz)
    row_of = np.repeat(np.arange(X.shape[0]), sizes)
    order = np.lexsort((keys, row_of))
    rank = np.empty(X.nnz, dtype=np.int64)
    rank[order] = np.arange(X.nnz) - np.repeat(X.indptr[:-1], sizes)
    hidden = rank < np.repeat(n_hidden, sizes)
    X_in = sp.csr_matrix((X.data[~hidden], (row_of[~hidden], X.indices[~hidden])), shape=X.shape)
    X_hid = sp.csr_matrix((X.data[hidden], (row_of[hidden], X.indices[hidden])), shape=X.shape)
    return binarize(X_in), binarize(X_hid)


def fold_in_split(
    X: sp.csr_matrix, *, hidden_fraction: float = 0.2, seed: int = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Strong-generalisation fold-in: per unit, ~80% of items are input and ~20% hidden.

    Units with fewer than 2 items are dropped (nothing to both give and hide). Every kept unit has at
    least one input and one hidden item.
    """
    X = _rows_with_min_items(binarize(X), 2)
    sizes = np.diff(X.indptr)
    n_hidden = np.clip(np.round(sizes * hidden_fraction).astype(np.int64), 1, sizes - 1)
    return _split_rows(X, n_hidden, seed)


def leave_one_out(X: sp.csr_matrix, *, seed: int = 0) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Leave-one-out: one random item of each unit is hidden, the rest is the input (needs >= 2 items).

    Suited to baskets, which are too small to hide 20% of.
    """
    X = _rows_with_min_items(binarize(X), 2)
    return _split_rows(X, np.ones(X.shape[0], dtype=np.int64), seed)


def leave_each_out(
    X: sp.csr_matrix, *, seed: int = 0, max_cases: int | None = None
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Leave-one-out, several times per unit: each unit with >= 2 items gives one case per item it
    hides (a random subset of at most max_cases // units items per unit), input the rest.

    For choosing hyper-parameters on baskets: one hidden item per basket makes a validation score so
    noisy that early stopping and blend weights follow the noise; every item of the basket in turn
    gives several times the cases from the same units, and the same expected score.
    """
    X = _rows_with_min_items(binarize(X), 2)
    sizes = np.diff(X.indptr)
    per_unit = sizes if not max_cases else np.minimum(sizes, max(1, int(max_cases) // max(len(sizes), 1)))
    rng = np.random.default_rng(seed)
    keys = rng.random(X.nnz)
    row_of = np.repeat(np.arange(X.shape[0]), sizes)
    order = np.lexsort((keys, row_of))
    rank = np.empty(X.nnz, dtype=np.int64)
    rank[order] = np.arange(X.nnz) - np.repeat(X.indptr[:-1], sizes)
    hidden_entries = np.flatnonzero(rank < np.repeat(per_unit, sizes))  # one case each, in row order
    case_unit = row_of[hidden_entries]
    lengths = sizes[case_unit]
    starts = np.repeat(X.indptr[case_unit], lengths)
    within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    entries = starts + within  # every entry of each case's unit
    case_of = np.repeat(np.arange(case_unit.size), lengths)
    keep = entries != np.repeat(hidden_entries, lengths)
    shape = (case_unit.size, X.shape[1])
    X_in = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (case_of[keep], X.indices[entries[keep]])), shape=shape
    )
    X_hid = sp.csr_matrix(
        (np.ones(case_unit.size, dtype=np.float32), (np.arange(case_unit.size), X.indices[hidden_entries])),
        shape=shape,
    )
    return binarize(X_in), binarize(X_hid)


def filter_items(X: sp.csr_matrix, min_support: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Keep the items seen in at least `min_support` units; returns the matrix and the kept item ids."""
    counts = np.asarray((X > 0).sum(axis=0)).ravel()
    keep = np.flatnonzero(counts >= min_support)
    return binarize(X[:, keep]), keep


def preprocess(
    X: sp.csr_matrix, *, min_support: int = 1, max_items: int | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Drop items seen in fewer than `min_support` units, then keep the `max_items` most frequent.

    The benchmark and the service both call this before splitting, so that the same data give the same
    matrix. Rows are never dropped (a unit left empty just is not evaluated), so the positional split
    is unchanged. Ties in frequency keep the earlier (canonical) column. Returns the kept column ids.
    """
    X, keep = filter_items(X, max(1, int(min_support)))
    if max_items is not None and X.shape[1] > max_items:
        counts = np.asarray(X.sum(axis=0)).ravel()
        top = np.sort(np.argsort(-counts, kind="stable")[: int(max_items)])
        X, keep = binarize(X[:, top]), keep[top]
    return X, keep


def unit_sort_key(key: UnitKey) -> tuple:
    """Users (by name) first, then anonymous baskets (by number)."""
    return (1, int(key)) if isinstance(key, (int, np.integer)) else (0, str(key))


def canonical_order(unit_keys: Sequence[UnitKey], item_keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column permutations into the canonical order: units by `unit_sort_key`, items by name.

    The split is positional, so the benchmark (rows in file order) and the service (rows in database
    order) only hold out the same units for the same seed when both first sort this way.
    """
    rows = sorted(range(len(unit_keys)), key=lambda i: unit_sort_key(unit_keys[i]))
    cols = sorted(range(len(item_keys)), key=lambda j: str(item_keys[j]))
    return np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)


def canonical_matrix(
    unit_codes: np.ndarray,
    item_codes: np.ndarray,
    unit_keys: Sequence[UnitKey],
    item_keys: Sequence[str],
) -> tuple[sp.csr_matrix, list, list[str]]:
    """Binary matrix in canonical order from codes into the (unique) `unit_keys` and `item_keys`.

    Returns the matrix and the unit and item keys in its row and column order.
    """
    rows, cols = canonical_order(unit_keys, item_keys)
    row_rank = np.empty(len(rows), dtype=np.int64)
    row_rank[rows] = np.arange(len(rows))
    col_rank = np.empty(len(cols), dtype=np.int64)
    col_rank[cols] = np.arange(len(cols))
    units = np.asarray(unit_codes, dtype=np.int64)
    items = np.asarray(item_codes, dtype=np.int64)
    X = build_matrix(row_rank[units], col_rank[items], n_units=len(rows), n_items=len(cols))
    return X, [unit_keys[i] for i in rows], [item_keys[j] for j in cols]
