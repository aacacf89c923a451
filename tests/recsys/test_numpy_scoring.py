"""Serving scores a request's few rows in numpy; the answer must be torch's, for every network shape."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from airec.recsys.algorithms import AutoEncoder, load_model
from airec.recsys.algorithms.autoencoder_network import NUMPY_ROWS, numpy_logits, torch_logits


def _rows(n_items: int, n: int, seed: int = 1) -> sp.csr_matrix:
    """n item sets of 1-12 items, one of them empty (a set of unknown items scores the bias alone)."""
    rng = np.random.default_rng(seed)
    rows, cols = [], []
    for r in range(1, n):
        chosen = rng.choice(n_items, size=rng.integers(1, 13), replace=False)
        rows += [r] * len(chosen)
        cols += chosen.tolist()
    return sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=(n, n_items))


@pytest.mark.parametrize(
    "params",
    [
        {},  # Mult-DAE with its linear path, as trained by default
        {"linear_path": False},
        {"hidden": 16, "latent": 8, "linear_path": False},
        {"variational": True, "latent": 8},
        {"variational": True, "hidden": 16, "latent": 8, "linear_path": False},
        {"members": 3, "latent": 8},
    ],
)
def test_numpy_scores_equal_torch_scores(blocks: sp.csr_matrix, params: dict, tmp_path: Path) -> None:
    model = AutoEncoder(epochs=3, seed=0, **params)
    model.fit(blocks)
    model.save(tmp_path)
    loaded = load_model(tmp_path)  # what a worker serves
    for m in (model, loaded):
        X = _rows(blocks.shape[1], 20)
        in_numpy = numpy_logits(m.net, m._weights(), X)
        in_torch = torch_logits(m.net, X)
        assert in_numpy.dtype == np.float32 and in_numpy.shape == in_torch.shape
        np.testing.assert_allclose(in_numpy, in_torch, rtol=1e-5, atol=1e-5)
        # The full score (with the linear path when on) of a small batch is the numpy one and ranks
        # as torch's does.
        full = m.score(X)
        np.testing.assert_allclose(
            full, m.score(sp.vstack([X] * (NUMPY_ROWS // 20 + 1)))[:20], rtol=1e-5, atol=1e-5
        )
        for r in range(1, X.shape[0]):
            assert list(np.argsort(-in_numpy[r])[:10]) == list(np.argsort(-in_torch[r])[:10])


def test_a_request_is_scored_in_numpy_not_torch(blocks: sp.csr_matrix, monkeypatch) -> None:
    model = AutoEncoder(epochs=2, seed=0, linear_path=False)
    model.fit(blocks)

    def refuse(*args, **kwargs):
        raise AssertionError("torch used for a request's row")

    monkeypatch.setattr(model.net, "forward", refuse)
    assert model.score(_rows(blocks.shape[1], 2)).shape == (2, blocks.shape[1])


def test_ease_weights_are_row_major_when_fitted_saved_and_loaded(blocks: sp.csr_matrix, tmp_path: Path):
    """A sparse row times a Fortran-ordered B copies all of B per request (3 s at 10k items)."""
    from airec.recsys.algorithms import EASE

    model = EASE(lam=10.0)
    model.fit(blocks)
    assert model.B.flags.c_contiguous
    model.save(tmp_path)
    loaded = load_model(tmp_path)
    assert loaded.B.flags.c_contiguous
    np.testing.assert_allclose(loaded.score(blocks[:5]), model.score(blocks[:5]), rtol=1e-6)
    np.save(tmp_path / "B.npy", np.asfortranarray(model.B))  # as an older version saved it
    assert load_model(tmp_path).B.flags.c_contiguous
