"""Matrix building and the fixed-seed splits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from airec.recsys.data import build_matrix, fold_in_split, leave_each_out, leave_one_out, split_units
from airec.recsys.evaluation import choose_protocol, make_split, selection_metric


def test_build_matrix_dedupes_and_binarises() -> None:
    X = build_matrix(np.array([0, 0, 0, 2]), np.array([1, 1, 3, 0]))
    assert X.shape == (3, 4)
    assert X.nnz == 3
    assert set(X.data.tolist()) == {1.0}


def test_split_units_disjoint_and_reproducible() -> None:
    train, val, test = split_units(1000, holdout_fraction=0.1, seed=3)
    assert len(val) == len(test) == 100
    assert len(set(train) | set(val) | set(test)) == 1000
    assert not (set(train) & set(val)) and not (set(val) & set(test)) and not (set(train) & set(test))
    again = split_units(1000, holdout_fraction=0.1, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    assert not np.array_equal(val, split_units(1000, holdout_fraction=0.1, seed=4)[1])


def test_fold_in_80_20() -> None:
    X = sp.csr_matrix(np.ones((50, 40), dtype=np.float32))
    X_in, X_hid = fold_in_split(X, seed=0)
    assert np.all(np.diff(X_hid.indptr) == 8)
    assert np.all(np.diff(X_in.indptr) == 32)
    assert (X_in.multiply(X_hid)).nnz == 0
    assert ((X_in + X_hid) != X).nnz == 0
    again = fold_in_split(X, seed=0)
    assert (again[1] != X_hid).nnz == 0
    assert (fold_in_split(X, seed=1)[1] != X_hid).nnz > 0


def test_fold_in_drops_tiny_units_and_keeps_input() -> None:
    X = build_matrix(np.array([0, 1, 1, 2, 2, 2]), np.array([0, 0, 1, 0, 1, 2]))
    X_in, X_hid = fold_in_split(X, seed=0)
    assert X_in.shape[0] == 2  # the 1-item unit is dropped
    assert np.all(np.diff(X_in.indptr) >= 1) and np.all(np.diff(X_hid.indptr) >= 1)


def test_leave_one_out(blocks: sp.csr_matrix) -> None:
    X = blocks
    X_in, X_hid = leave_one_out(X, seed=0)
    assert np.all(np.diff(X_hid.indptr) == 1)
    assert ((X_in + X_hid) != X).nnz == 0


def test_leave_each_out_hides_every_item_of_a_unit_in_turn() -> None:
    X = build_matrix(np.array([0, 0, 0, 1, 2, 2]), np.array([0, 1, 3, 1, 0, 2]), n_items=4)
    X_in, X_hid = leave_each_out(X, seed=1)
    assert X_in.shape == X_hid.shape == (5, 4)  # 3 cases from unit 0, none from 1 (one item), 2 from 2
    assert (np.diff(X_hid.indptr) == 1).all()
    assert (X_in.multiply(X_hid)).nnz == 0  # the hidden item is never part of its input
    whole = sorted(map(tuple, (X_in + X_hid).toarray().astype(int).tolist()))
    assert whole == sorted([(1, 1, 0, 1)] * 3 + [(1, 0, 1, 0)] * 2)
    capped_in, capped_hid = leave_each_out(X, seed=1, max_cases=2)  # at most one case per unit
    assert capped_hid.shape[0] == 2 and capped_hid.nnz == 2


def test_make_split_protocols(blocks: sp.csr_matrix) -> None:
    X = blocks
    assert choose_protocol(X) == "loo"  # 4-8 items per unit
    assert choose_protocol(X, kind="ratings") == "strong"
    s = make_split(X, "auto", seed=0)
    assert s.protocol == "loo"
    assert s.train.shape[0] == 280 and s.test[0].shape[0] == 60
    assert s.validation[0].shape[0] == blocks[s.units[1]].nnz  # leave-each-out: one case per item
    assert selection_metric(s.validation[1]) == "ndcg@10"
    s2 = make_split(X, "strong", seed=0)
    assert selection_metric(s2.validation[1]) == "ndcg@100"
    assert (s2.train != make_split(X, "strong", seed=0).train).nnz == 0
    with pytest.raises(ValueError):
        make_split(X, "bogus")


def test_the_refit_rows_are_every_unit_but_the_test_ones(blocks: sp.csr_matrix) -> None:
    s = make_split(blocks, "loo", seed=4)
    train, validation, test = s.units
    assert (s.train != blocks[train]).nnz == 0
    kept = np.sort(np.concatenate([train, validation]))
    assert (s.refit_rows != blocks[kept]).nnz == 0 and s.refit_rows.shape[0] == 340
    assert not set(kept) & set(test)


def test_bench_refit_fits_the_chosen_model_again_before_the_test(blocks: sp.csr_matrix) -> None:
    from airec.recsys.bench import bench_data
    from airec.recsys.datasets import Dataset

    ds = Dataset("blocks", blocks, "ratings")
    plain = bench_data(ds, 1, ["ease"], min_support=1, max_items=None)
    refit = bench_data(ds, 1, ["ease"], min_support=1, max_items=None, refit=True)
    assert refit["refit"] and not plain["refit"]
    assert refit["runs"]["ease"][0]["test"] != plain["runs"]["ease"][0]["test"]  # more rows, other weights
    assert refit["mean"]["ease"]["recall@20"] > 0.9


def test_canonical_order_users_by_name_then_baskets_by_number() -> None:
    from airec.recsys.data import canonical_matrix, canonical_order

    units = [12, "b", 3, "a10", "a9"]
    items = ["10", "9", "x"]
    rows, cols = canonical_order(units, items)
    assert [units[i] for i in rows] == ["a10", "a9", "b", 3, 12]
    assert [items[j] for j in cols] == ["10", "9", "x"]
    X, u, i = canonical_matrix(np.array([0, 3, 3]), np.array([2, 1, 0]), units, items)
    assert u == ["a10", "a9", "b", 3, 12] and i == ["10", "9", "x"]
    assert X.toarray().tolist() == [[1, 1, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 1]]


def test_preprocess_drops_rare_then_keeps_most_frequent_columns() -> None:
    from airec.recsys.data import preprocess

    # Column supports: 3, 1, 2, 2, 3 (columns 2 and 3 tie; the earlier one wins the last place).
    dense = np.array([[1, 1, 1, 0, 1], [1, 0, 1, 1, 1], [1, 0, 0, 1, 1], [0, 0, 0, 0, 0]])
    X = sp.csr_matrix(dense.astype(np.float32))
    Y, keep = preprocess(X)
    assert Y.shape == X.shape and keep.tolist() == [0, 1, 2, 3, 4]
    Y, keep = preprocess(X, min_support=2, max_items=3)
    assert keep.tolist() == [0, 2, 4] and Y.shape == (4, 3)  # rows are never dropped
    assert (Y.toarray() == dense[:, [0, 2, 4]]).all()
