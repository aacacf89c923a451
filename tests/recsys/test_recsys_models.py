"""Every algorithm against the same planted-structure checks (in the style of `implicit`'s tests)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from airec.recsys.evaluation import evaluate, make_split
from airec.recsys.metrics import mask_input, top_k
from airec.recsys.models import ALGORITHMS, EASE, ItemKNN, Popularity, load_model

BLOCK = 10


class RecommenderTestMixin:
    """Subclasses say how to build a (small, fast) model; the checks are shared."""

    personalised = True

    def make_model(self):
        raise NotImplementedError

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, blocks: sp.csr_matrix):
        split = make_split(blocks, "strong", seed=0)
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

    def test_deterministic(self, fitted) -> None:
        model, split, _ = fitted
        again = self.make_model()
        again.fit(split.train, validation=split.validation)
        np.testing.assert_allclose(again.score(split.test[0]), model.score(split.test[0]), rtol=1e-5,
                                   atol=1e-6)

    def test_registered(self) -> None:
        model = self.make_model()
        assert ALGORITHMS[model.name] is type(model)


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
        assert model.chosen_lam in (1.0, 10.0, 100.0)
        assert report.history

    def test_zero_diagonal(self, fitted) -> None:
        model, _, _ = fitted
        assert np.all(np.diag(model.B) == 0)

    def test_too_many_items_is_a_clear_error(self, blocks: sp.csr_matrix) -> None:
        with pytest.raises(ValueError, match="max_items"):
            EASE(lam=10.0, max_items=20).fit(blocks)
