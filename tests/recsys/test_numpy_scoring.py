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


@pytest.mark.parametrize(
    "params",
    [
        {"linear_weight": 2.0, "linear_lam": 10.0},  # the network with its linear path
        {"hidden": 16, "latent": 8, "linear_path": False},
        {"variational": True, "latent": 8, "linear_weight": 0.5, "linear_lam": 10.0},
        {"members": 3, "latent": 8, "linear_path": False},
    ],
)
def test_leave_one_out_drops_equal_scoring_each_smaller_set(blocks: sp.csr_matrix, params: dict) -> None:
    """The autoencoder's explanation shortcut (one batched pass from the set's first-layer sum) drops
    each score by exactly what scoring the set again without each input would."""
    model = AutoEncoder(epochs=3, seed=0, **params)
    model.fit(blocks)
    assert (model.linear_model is not None) == ("linear_weight" in params)
    rng = np.random.default_rng(7)
    for size in (2, 5, 30):
        items = [int(i) for i in rng.choice(blocks.shape[1], size=size, replace=False)]
        columns = rng.choice(blocks.shape[1], size=8, replace=False)
        left_out = items[-4:]
        fast = model.drops_without_each(items, left_out, columns)
        full = model.score_items(items)[columns]
        slow = np.array(
            [full - model.score_items([j for j in items if j != out])[columns] for out in left_out]
        )
        assert fast.shape == (len(left_out), len(columns))
        np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("units", [400, 40])  # more units than items: primal form; fewer: dual
def test_ease_drops_are_each_left_out_items_own_scores(units: int) -> None:
    """EASE is linear in its input: leaving j out drops every score by what j alone scores, read for the
    asked columns only, in either form."""
    from airec.recsys.algorithms import EASE

    rng = np.random.default_rng(3)
    X = sp.random(units, 120, density=0.08, format="csr", random_state=3, dtype=np.float32)
    X.data[:] = 1.0
    model = EASE(lam=5.0)
    model.fit(X)
    assert model.form == ("primal" if units > 120 else "dual")
    items = [int(i) for i in rng.choice(120, size=12, replace=False)]
    columns = np.concatenate([rng.choice(120, size=6, replace=False), items[:2]])  # inputs too
    fast = model.drops_without_each(items, items, columns)
    full = model.score_items(items)[columns]
    slow = np.array([full - model.score_items([j for j in items if j != out])[columns] for out in items])
    np.testing.assert_allclose(fast, slow, rtol=1e-4, atol=1e-5)


def test_saved_weights_are_mapped_from_the_folder_and_a_write_stays_private(
    blocks: sp.csr_matrix, tmp_path: Path
) -> None:
    """Every worker of a host maps the same weight files (one copy in the page cache and the CPU's
    shared cache), copy-on-write: a write into a loaded parameter changes neither the file nor another
    worker's model."""
    import torch

    from airec.recsys.algorithms.autoencoder import WEIGHTS_FOLDER

    model = AutoEncoder(epochs=2, seed=0, latent=8, linear_weight=1.0, linear_lam=10.0)
    model.fit(blocks)
    model.save(tmp_path)
    saved = {p.name for p in (tmp_path / WEIGHTS_FOLDER).glob("*.npy")}
    assert "dec_out.weight.npy" in saved and not (tmp_path / "weights.npz").exists()
    first, second = load_model(tmp_path), load_model(tmp_path)
    mapped = Path("/proc/self/maps").read_text()
    assert str(tmp_path / WEIGHTS_FOLDER / "dec_out.weight.npy") in mapped
    X = _rows(blocks.shape[1], 6)
    expected = model.score(X)
    np.testing.assert_array_equal(first.score(X), expected)

    with torch.no_grad():
        first.net.dec_out.bias.add_(100.0)  # e.g. a refit training from the loaded weights
    assert not np.array_equal(first.score(X), expected)
    np.testing.assert_array_equal(second.score(X), expected)
    on_disk = np.load(tmp_path / WEIGHTS_FOLDER / "dec_out.bias.npy")
    np.testing.assert_array_equal(on_disk, model.net.dec_out.bias.detach().numpy())
    np.testing.assert_array_equal(load_model(tmp_path).score(X), expected)
