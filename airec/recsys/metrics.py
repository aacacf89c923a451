"""Top-k ranking metrics over the full catalogue (no sampled negatives).

Input items are masked to -inf first, so a model is never credited (or blamed) for recommending
what the unit already has. Definitions follow Liang et al. 2018 (VAE-CF): Recall@k divides hits by
min(k, |hidden|) so that a perfect ranking scores 1; NDCG@k uses binary relevance.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp


def mask_input(scores: np.ndarray, X_input: sp.csr_matrix | None, *, copy: bool = True) -> np.ndarray:
    """Scores with each row's input items set to -inf."""
    out = np.array(scores, dtype=np.float32, copy=copy)
    if X_input is not None and X_input.nnz:
        X_input = sp.csr_matrix(X_input)
        rows = np.repeat(np.arange(X_input.shape[0]), np.diff(X_input.indptr))
        out[rows, X_input.indices] = -np.inf
    return out


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best columns of each row, best first; equal scores in index order.

    float32 rows go through torch.topk: selecting the k best of 20k columns it was measured 8x faster
    than numpy's argpartition (which also copies the negated matrix), and choosing the linear weight
    ranks 22 candidate blends of every validation row (docs/benchmarks.md, "Training time by stage").
    Other dtypes, and rows holding NaN (topk would rank NaN first), take the argpartition path."""
    n_items = scores.shape[1]
    k = min(k, n_items)
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k == n_items:
        part = np.tile(np.arange(n_items), (scores.shape[0], 1))
    elif scores.dtype == np.float32 and scores.flags.c_contiguous and not np.isnan(scores).any():
        import torch  # here, not at the top: the web app imports this module and never needs torch

        part = np.sort(torch.topk(torch.from_numpy(scores), k, dim=1, sorted=False).indices.numpy(), axis=1)
    else:
        part = np.sort(np.argpartition(-scores, k - 1, axis=1)[:, :k], axis=1)
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _hits(top: np.ndarray, X_hidden: sp.csr_matrix) -> np.ndarray:
    """Boolean (rows x k): is the item at each rank hidden for that row (sorted-key lookup)."""
    X_hidden = sp.csr_matrix(X_hidden)
    X_hidden.sort_indices()
    n_items = np.int64(X_hidden.shape[1])
    rows = np.repeat(np.arange(X_hidden.shape[0], dtype=np.int64), np.diff(X_hidden.indptr))
    keys = rows * n_items + X_hidden.indices  # sorted because rows and indices are sorted
    query = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    pos = np.minimum(np.searchsorted(keys, query), max(keys.size - 1, 0))
    return keys[pos] == query if keys.size else np.zeros(top.shape, dtype=bool)


def per_row_metrics(
    scores: np.ndarray, X_input: sp.csr_matrix | None, X_hidden: sp.csr_matrix, ks: Iterable[int]
) -> dict[str, np.ndarray]:
    """Per-row recall/ndcg/hit_rate at each k, for the rows that have hidden items.

    Returned per row (not averaged) so that batched evaluation can concatenate before averaging.
    """
    ks = sorted({int(k) for k in ks})
    X_hidden = sp.csr_matrix(X_hidden)
    n_hidden = np.diff(X_hidden.indptr)
    keep = n_hidden > 0
    masked = mask_input(scores, X_input)
    top = top_k(masked[keep], max(ks))
    n_hidden = n_hidden[keep]
    hits = _hits(top, X_hidden[keep])
    discounts = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    ideal = np.cumsum(discounts)  # ideal DCG of n hits is ideal[n - 1]
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hk = hits[:, :k]
        n_hit = hk.sum(axis=1)
        denom = np.minimum(k, n_hidden)
        dcg = (hk * discounts[: hk.shape[1]]).sum(axis=1)
        idcg = ideal[np.minimum(denom, len(discounts)) - 1]
        out[f"recall@{k}"] = n_hit / denom
        out[f"ndcg@{k}"] = dcg / idcg
        out[f"hit_rate@{k}"] = (n_hit > 0).astype(np.float64)
    return out


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else 0.0


def recall_at_k(scores: np.ndarray, X_input: sp.csr_matrix | None, X_hidden: sp.csr_matrix, k: int) -> float:
    """Mean over rows with hidden items of hits@k / min(k, |hidden|)."""
    return _mean(per_row_metrics(scores, X_input, X_hidden, [k])[f"recall@{k}"])


def ndcg_at_k(scores: np.ndarray, X_input: sp.csr_matrix | None, X_hidden: sp.csr_matrix, k: int) -> float:
    """Mean binary-relevance NDCG@k; the ideal DCG places min(k, |hidden|) hits at the top."""
    return _mean(per_row_metrics(scores, X_input, X_hidden, [k])[f"ndcg@{k}"])


def hit_rate_at_k(
    scores: np.ndarray, X_input: sp.csr_matrix | None, X_hidden: sp.csr_matrix, k: int
) -> float:
    """Share of rows with at least one hidden item in the top k."""
    return _mean(per_row_metrics(scores, X_input, X_hidden, [k])[f"hit_rate@{k}"])
