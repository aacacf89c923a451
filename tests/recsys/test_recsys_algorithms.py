"""Every algorithm against the same planted-structure checks (in the style of `implicit`'s tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from airec.recsys.algorithms import ALGORITHMS, EASE, AutoEncoder, ItemKNN, Popularity, load_model
from airec.recsys.algorithms.autoencoder_network import sparse_input
from airec.recsys.algorithms.ease import ease_weights, gram
from airec.recsys.base import item_rows
from airec.recsys.evaluation import evaluate, make_split
from airec.recsys.metrics import mask_input, top_k
from tests.recsys.conftest import block_matrix

BLOCK = 10


class RecommenderTestMixin:
    """Subclasses say how to build a (small, fast) model; the checks are shared."""

    personalised = True
    #: Units of the planted matrix when not the shared one (fewer units than items: EASE's dual form).
    units: int | None = None

    def make_model(self):
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, blocks: sp.csr_matrix):
        data = blocks if cls.units is None else block_matrix(cls.units, seed=7)
        split = make_split(data, "strong", seed=0)
        model = cls().make_model()
        report = model.fit(split.train, validation=split.validation)
        return model, split, report

    def test_scores_shape_and_dtype(self, fitted) -> None:
        model, split, _ = fitted
        scores = model.score(split.test[0])
        assert scores.shape == (split.test[0].shape[0], split.train.shape[1])
        assert scores.dtype == np.float32
        assert np.all(np.isfinite(scores))

    def test_recommends_from_the_same_block(self, fitted) -> None:
        if not self.personalised:
            pytest.skip("not personalised")
        model, _, _ = fitted
        for block in range(5):
            items = [block * BLOCK, block * BLOCK + 3, block * BLOCK + 7]
            query = sp.csr_matrix((np.ones(3, dtype=np.float32), ([0, 0, 0], items)), shape=(1, 5 * BLOCK))
            top = top_k(mask_input(model.score(query), query), 5)[0]
            assert set(top // BLOCK) == {block}, (block, top)
            assert not set(top) & set(items)

    def test_beats_chance_on_test_split(self, fitted) -> None:
        model, split, _ = fitted
        result = evaluate(model, *split.test, ks=(10,))
        assert result["n_units"] == split.test[0].shape[0]
        assert result["recall@10"] > (0.9 if self.personalised else 0.15)

    def test_save_load_round_trip(self, fitted, tmp_path: Path) -> None:
        model, split, _ = fitted
        model.save(tmp_path)
        loaded = load_model(tmp_path)
        assert type(loaded) is type(model)
        np.testing.assert_array_equal(loaded.score(split.test[0]), model.score(split.test[0]))
        assert loaded.get_params() == model.get_params()

    def test_one_set_scores_as_its_row_does(self, fitted, tmp_path: Path) -> None:
        """score_items (what a request calls) equals score() of the same set's row, saved and loaded
        too (served weights are memory-mapped)."""
        model, split, _ = fitted
        model.save(tmp_path)
        X = split.test[0][:25]
        for m in (model, load_model(tmp_path)):
            rows = m.score(X)
            for r in range(X.shape[0]):
                items = X.indices[X.indptr[r] : X.indptr[r + 1]].tolist()
                one = m.score_items(items[::-1])  # any order: it is a set
                assert one.shape == (X.shape[1],) and one.dtype == np.float32
                np.testing.assert_allclose(one, rows[r], rtol=1e-4, atol=1e-5)
            empty = sp.csr_matrix((1, X.shape[1]), dtype=np.float32)  # a set of unknown items only
            np.testing.assert_allclose(m.score_items([]), m.score(empty)[0], rtol=1e-4, atol=1e-5)

    def test_fresh_item_scores_are_the_callers_to_write(self, fitted, tmp_path: Path) -> None:
        """A model that says its score_items answers are fresh (serving then masks them in place)
        returns a new array every call, from its own and from mapped weights: writing into one answer
        changes neither the next answer nor any other set's scores."""
        model, split, _ = fitted
        if not model.fresh_item_scores:
            pytest.skip("serving copies this model's answers")
        model.save(tmp_path)
        X = split.test[0]
        for m in (model, load_model(tmp_path)):
            for size in (1, 3):  # one item: the dual and primal forms may read a single row
                items = X.indices[X.indptr[0] : X.indptr[0] + size].tolist()
                first = m.score_items(items)
                expected = first.copy()
                first[:] = -np.inf
                np.testing.assert_array_equal(m.score_items(items), expected)

    def test_deterministic(self, fitted) -> None:
        model, split, _ = fitted
        again = self.make_model()
        again.fit(split.train, validation=split.validation)
        np.testing.assert_allclose(
            again.score(split.test[0]), model.score(split.test[0]), rtol=1e-5, atol=1e-6
        )

    def test_registered(self) -> None:
        model = self.make_model()
        assert ALGORITHMS[model.name] is type(model)

    def test_refit_copy_repeats_the_fit_without_validation(self, fitted) -> None:
        """What the service refits on every unit is the configuration validation chose: fitted on
        the same rows without validation, the copy scores exactly as the original."""
        model, split, _ = fitted
        copy = model.refit_copy()
        assert type(copy) is type(model) and copy is not model
        copy.fit(split.train)
        np.testing.assert_allclose(
            copy.score(split.test[0]), model.score(split.test[0]), rtol=1e-4, atol=1e-5
        )


class TestPopularity(RecommenderTestMixin):
    personalised = False

    def make_model(self):
        return Popularity()


class TestItemKNN(RecommenderTestMixin):
    def make_model(self):
        return ItemKNN(grid=(5, 20))

    def test_neighbours_chosen_on_validation(self, fitted) -> None:
        model, _, report = fitted
        assert model.chosen_n in (5, 20)
        assert len(report.history) == 2


class TestEASE(RecommenderTestMixin):
    def make_model(self):
        return EASE(grid=(1.0, 10.0, 100.0))

    def test_lambda_chosen_on_validation(self, fitted) -> None:
        model, _, report = fitted
        assert 1.0 <= model.chosen_lam <= 100.0
        assert report.history

    def test_zero_diagonal(self, fitted) -> None:
        model, _, _ = fitted
        assert np.all(np.diag(model.B) == 0)

    def test_too_many_items_is_a_clear_error(self, blocks: sp.csr_matrix) -> None:
        with pytest.raises(ValueError, match="max_items"):
            EASE(lam=10.0, max_items=20).fit(blocks)

    def test_a_large_catalogue_searches_lambda_on_a_proxy_first(self, blocks, monkeypatch) -> None:
        """The proxy (most frequent items only) picks where to start; the full catalogue decides among
        that lambda and its neighbours, in fewer factorisations than the whole climb."""
        from airec.recsys.algorithms import ease as ease_module
        from airec.recsys.evaluation import validation_score

        split = make_split(blocks, "loo", seed=0)
        full = EASE()
        full_report = full.fit(split.train, validation=split.validation)
        monkeypatch.setattr(ease_module, "PROXY_ITEMS", 20)
        proxied = EASE()
        report = proxied.fit(split.train, validation=split.validation)
        assert len(report.history) < len(full_report.history)
        best = validation_score(full.score, split.validation)
        assert validation_score(proxied.score, split.validation) >= best - 0.01

    def test_a_very_large_catalogue_is_factorised_once_at_the_wider_proxys_lambda(
        self, blocks, monkeypatch
    ) -> None:
        """Above WIDE_PROXY_ITEMS the neighbours are compared on a wider proxy: the full catalogue is
        factorised exactly once, and ranks as well as the full climb."""
        from airec.recsys.algorithms import ease as ease_module
        from airec.recsys.evaluation import validation_score

        split = make_split(blocks, "loo", seed=0)
        full = EASE()
        full.fit(split.train, validation=split.validation)
        sizes: list[int] = []
        weights = ease_module.ease_weights

        def counted(G, lam):
            sizes.append(len(G))
            return weights(G, lam)

        monkeypatch.setattr(ease_module, "ease_weights", counted)
        monkeypatch.setattr(ease_module, "PROXY_ITEMS", 20)
        monkeypatch.setattr(ease_module, "WIDE_PROXY_ITEMS", 30)
        proxied = EASE()
        report = proxied.fit(split.train, validation=split.validation)
        n_items = blocks.shape[1]
        assert sizes.count(n_items) == 1 and set(sizes) == {20, 30, n_items}
        assert [entry["lam"] for entry in report.history] == [proxied.chosen_lam]
        best = validation_score(full.score, split.validation)
        assert validation_score(proxied.score, split.validation) >= best - 0.01

    def test_primal_form_when_units_outnumber_items(self, fitted) -> None:
        model, split, _ = fitted
        assert split.train.shape[0] > split.train.shape[1] and model.form == "primal"


class TestEASEDual(RecommenderTestMixin):
    """Fewer units than items: the Woodbury (dual) form, with no items x items matrix."""

    units = 46

    def make_model(self):
        return EASE(grid=(1.0, 10.0, 100.0))

    def test_dual_form_when_items_outnumber_units(self, fitted) -> None:
        model, split, _ = fitted
        assert split.train.shape[0] < split.train.shape[1]
        assert model.form == "dual" and model.B is None

    @pytest.mark.parametrize("lam", [0.5, 20.0, 3000.0])
    def test_dual_scores_equal_the_primal_formula(self, lam: float) -> None:
        rng = np.random.default_rng(3)
        X = sp.csr_matrix((rng.random((25, 60)) < 0.15).astype(np.float32))
        query = sp.csr_matrix((rng.random((9, 60)) < 0.1).astype(np.float32))
        dual = EASE(lam=lam)
        dual.fit(X)
        assert dual.form == "dual"
        B = ease_weights(gram(X), lam)
        np.testing.assert_allclose(dual.score(query), query @ B, rtol=1e-3, atol=1e-4)

    def test_saved_reach_rows_score_and_explain_as_k_inverse_does(self, tmp_path: Path, monkeypatch) -> None:
        """A saved dual model keeps X^T K^-1 by item (reach.npy, under REACH_MAX_BYTES): a loaded one
        scores a set and its leave-one-out drops from those rows as it does through K^-1; above the
        bound none is written, and a refit forgets the rows of the weights it replaces."""
        from airec.recsys.algorithms import ease as ease_module

        rng = np.random.default_rng(5)
        X = sp.csr_matrix((rng.random((30, 80)) < 0.2).astype(np.float32))
        model = EASE(lam=7.0)
        model.fit(X)
        for name in ("with", "without"):
            (tmp_path / name).mkdir()
        model.save(tmp_path / "with")
        with_reach = load_model(tmp_path / "with")
        assert with_reach.reach is not None and with_reach.reach.shape == (80, 30)
        monkeypatch.setattr(ease_module, "REACH_MAX_BYTES", 4 * 80 * 30 - 1)
        model.save(tmp_path / "without")
        assert not (tmp_path / "without" / "reach.npy").exists()
        without = load_model(tmp_path / "without")
        assert without.reach is None
        for items in ([3], [0, 7, 19, 44], list(range(0, 80, 3))):
            np.testing.assert_allclose(
                with_reach.score_items(items), without.score_items(items), rtol=1e-4, atol=1e-5
            )
            np.testing.assert_allclose(
                with_reach.score_items(items), model.score(item_rows([items], 80))[0], rtol=1e-4, atol=1e-5
            )
            columns = np.arange(0, 80, 5)
            np.testing.assert_allclose(
                with_reach.drops_without_each(items, items[:2], columns),
                without.drops_without_each(items, items[:2], columns),
                rtol=1e-4,
                atol=1e-5,
            )
        with_reach.fit(X)
        assert with_reach.reach is None

    def test_the_dense_side_is_bounded_by_max_items(self) -> None:
        X = block_matrix(30)  # 30 units x 50 items: dense side 30
        EASE(lam=10.0, max_items=30).fit(X)
        with pytest.raises(ValueError, match="max_items"):
            EASE(lam=10.0, max_items=29).fit(X)


class TestAutoEncoder(RecommenderTestMixin):
    def make_model(self):
        return AutoEncoder(hidden=32, latent=16, epochs=12, patience=4, batch_size=32, seed=1)

    def test_progress_reports_each_epoch(self, blocks: sp.csr_matrix) -> None:
        split = make_split(blocks, "strong", seed=0)
        seen: list[dict] = []
        AutoEncoder(hidden=16, latent=8, epochs=3, patience=5, seed=0).fit(
            split.train, validation=split.validation, progress=seen.append
        )
        assert [e["epoch"] for e in seen] == [1, 2, 3]
        assert {"epoch", "max_epochs", "train_loss", "val_loss", "val_ndcg"} <= set(seen[0])

    def test_early_stopping_keeps_best(self, fitted) -> None:
        model, _, report = fitted
        epochs = [h for h in report.history if "epoch" in h]
        best = max(h["val_ndcg"] for h in epochs)
        assert [h["val_ndcg"] for h in epochs][model.best_epoch - 1] == pytest.approx(best)


class TestAutoEncoderAlone(RecommenderTestMixin):
    """The network without the linear path must learn the blocks on its own."""

    def make_model(self):
        return AutoEncoder(
            hidden=32, latent=16, epochs=15, patience=15, batch_size=16, lr=3e-3, linear_path=False, seed=2
        )


class TestAutoEncoderMembers(RecommenderTestMixin):
    """An ensemble of one-layer nets packed side by side, network only."""

    def make_model(self):
        return AutoEncoder(
            latent=8, members=3, epochs=15, patience=15, batch_size=16, lr=3e-3, linear_path=False, seed=4
        )

    def test_score_is_the_mean_of_the_members(self, fitted) -> None:
        model, split, _ = fitted
        with torch.inference_mode():
            each = model.net(sparse_input(split.test[0]), per_member=True)[0].numpy()
        assert each.shape[0] == 3
        np.testing.assert_allclose(model.score(split.test[0]), each.mean(axis=0), rtol=1e-4, atol=1e-4)

    def test_members_need_the_one_layer_net(self) -> None:
        with pytest.raises(ValueError, match="members"):
            AutoEncoder(hidden=16, members=2).fit(sp.csr_matrix(np.eye(4, dtype=np.float32)))


def test_warm_start_keeps_known_items(blocks: sp.csr_matrix) -> None:
    old = AutoEncoder(hidden=16, latent=8, epochs=2, seed=0, linear_path=False)
    old.fit(blocks)
    # New catalogue: old items 5..49 in order, then three new items.
    mapping = np.concatenate([np.arange(5, 50), [-1, -1, -1]])
    new = AutoEncoder(hidden=16, latent=8, epochs=2, seed=0, linear_path=False)
    new.warm_start_from(old, mapping)
    known = np.arange(45)
    np.testing.assert_array_equal(
        new.net.enc_in.item_weight[known].detach().numpy(), old.net.enc_in.item_weight[5:].detach().numpy()
    )
    np.testing.assert_array_equal(
        new.net.dec_out.weight[known].detach().numpy(), old.net.dec_out.weight[5:].detach().numpy()
    )
    np.testing.assert_array_equal(
        new.net.dec_in.weight.detach().numpy(), old.net.dec_in.weight.detach().numpy()
    )
    fresh = new.net.dec_out.weight[45:].detach().numpy()
    assert fresh.shape == (3, 16) and np.abs(fresh).sum() > 0
    assert not any(
        np.allclose(fresh[i], old.net.dec_out.weight.detach().numpy()[j]) for i in range(3) for j in range(50)
    )
    # fit() continues from the warm weights rather than starting over
    X_new = sp.csr_matrix(blocks[:, 5:])
    X_new = sp.hstack([X_new, sp.csr_matrix((X_new.shape[0], 3))]).tocsr()
    report = new.fit(X_new)
    assert new.n_items == 48 and report.history


def test_warm_start_rejects_other_shapes(blocks: sp.csr_matrix) -> None:
    old = AutoEncoder(hidden=16, latent=8, epochs=1, linear_path=False)
    old.fit(blocks)
    with pytest.raises(ValueError):
        AutoEncoder(hidden=32, latent=8).warm_start_from(old, np.arange(50))


class TestVariationalAutoEncoder(RecommenderTestMixin):
    """Mult-VAE: two hidden layers, KL annealing."""

    def make_model(self):
        return AutoEncoder(
            hidden=32,
            latent=16,
            variational=True,
            beta=0.2,
            anneal_epochs=3,
            epochs=12,
            patience=4,
            batch_size=32,
            seed=3,
        )


@pytest.mark.parametrize("param", ["epochs", "hidden", "latent", "dropout", "lr", "members"])
def test_autoencoder_refuses_out_of_range_hyper_parameters(param):
    low, high = AutoEncoder.RANGES[param]
    with pytest.raises(ValueError, match=f"{param} must be between"):
        AutoEncoder(**{param: high * 10 + 1})
    AutoEncoder(**{param: high})  # the bounds themselves are accepted
