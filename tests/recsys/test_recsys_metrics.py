"""Metrics against values computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from airec.recsys.metrics import hit_rate_at_k, mask_input, ndcg_at_k, per_row_metrics, recall_at_k, top_k


def csr(rows: list[list[int]], n_items: int = 6) -> sp.csr_matrix:
    data = np.zeros((len(rows), n_items), dtype=np.float32)
    for r, items in enumerate(rows):
        data[r, items] = 1
    return sp.csr_matrix(data)


SCORES = np.array([[0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]], dtype=np.float32)


def test_top_k_orders_best_first() -> None:
    assert top_k(SCORES, 3).tolist() == [[0, 1, 2], [5, 4, 3]]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_top_k_matches_a_full_sort(dtype) -> None:
    """The fast path (float32, torch.topk) and the argpartition one (other dtypes) both give what a
    full stable sort gives: the k best, best first, equal scores in index order, -inf last."""
    rng = np.random.default_rng(3)
    scores = rng.permutation(300 * 500).reshape(300, 500).astype(dtype)  # distinct values
    scores[:, rng.choice(500, 40, replace=False)] = -np.inf
    scores[:5, :100] = 7.0  # ties, all inside the k best of those rows
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :120]
    assert np.array_equal(top_k(scores, 120), expected)


def test_top_k_with_nan_ranks_nan_last() -> None:
    scores = np.array([[np.nan, 0.2, 0.9, 0.5]], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [[2, 3, 1]]


def test_masking_removes_input_items() -> None:
    masked = mask_input(SCORES, csr([[0], [5, 4]]))
    assert top_k(masked, 2).tolist() == [[1, 2], [3, 2]]
    assert SCORES[0, 0] == pytest.approx(0.9)  # caller's array untouched


def test_recall_ndcg_hit_rate_by_hand() -> None:
    # Row 0: input {0}; ranking 1,2,3,4,5; hidden {2, 5} -> hit at rank 2 only within k=2.
    # Row 1: input {5}; ranking 4,3,2,1,0; hidden {4}   -> hit at rank 1.
    X_in, X_hid = csr([[0], [5]]), csr([[2, 5], [4]])
    k = 2
    assert recall_at_k(SCORES, X_in, X_hid, k) == pytest.approx((1 / 2 + 1 / 1) / 2)
    ndcg0 = (1 / np.log2(3)) / (1 + 1 / np.log2(3))
    assert ndcg_at_k(SCORES, X_in, X_hid, k) == pytest.approx((ndcg0 + 1.0) / 2)
    assert hit_rate_at_k(SCORES, X_in, X_hid, k) == pytest.approx(1.0)
    # k=1: row 0 misses (item 1 first), row 1 hits.
    assert recall_at_k(SCORES, X_in, X_hid, 1) == pytest.approx(0.5)
    assert hit_rate_at_k(SCORES, X_in, X_hid, 1) == pytest.approx(0.5)


def test_recall_denominator_is_min_k_hidden() -> None:
    # 4 hidden items, k=2, both top-2 are hidden -> recall 1 (Liang et al.), not 2/4.
    X_in, X_hid = csr([[5]]), csr([[0, 1, 2, 3]])
    assert recall_at_k(SCORES[:1], X_in, X_hid, 2) == pytest.approx(1.0)
    assert ndcg_at_k(SCORES[:1], X_in, X_hid, 2) == pytest.approx(1.0)
    # k=5: all 4 hidden found among 5 -> recall 1; ndcg: hits at ranks 1-4 -> ideal -> 1.
    assert recall_at_k(SCORES[:1], X_in, X_hid, 5) == pytest.approx(1.0)


def test_rows_without_hidden_items_are_ignored() -> None:
    X_in, X_hid = csr([[0], [5]]), csr([[1], []])
    out = per_row_metrics(SCORES, X_in, X_hid, [1])
    assert out["recall@1"].tolist() == [1.0]


def test_ndcg_worst_position() -> None:
    # Only hidden item ranked last of 5 candidates: dcg = 1/log2(6).
    X_in, X_hid = csr([[0]]), csr([[5]])
    assert ndcg_at_k(SCORES[:1], X_in, X_hid, 5) == pytest.approx(1 / np.log2(6))
    assert ndcg_at_k(SCORES[:1], X_in, X_hid, 4) == pytest.approx(0.0)
