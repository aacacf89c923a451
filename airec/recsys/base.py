"""The one small interface every algorithm implements.

Rows of the matrices are *units* (a user's whole history or a lone basket), columns are items.
A model is fitted on a binary CSR matrix and scores a batch of item sets over the full catalogue.
Models never know item names: the caller keeps the vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

#: Called once per epoch (or once per candidate for closed-form models) with a dict like
#: {"epoch": 3, "max_epochs": 50, "train_loss": 1.2, "val_loss": 1.3, "val_ndcg": 0.31}.
ProgressCallback = Callable[[dict], None]


@dataclass
class FitReport:
    """What a fit learned about itself: chosen hyper-parameters and validation numbers."""

    params: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    history: list = field(default_factory=list)


@dataclass(frozen=True)
class DataShape:
    """What a fit's memory depends on, known before fitting."""

    units: int
    items: int
    nnz: int
    pairs: int  # sum over units of items^2: an upper bound on the nonzeros of X^T X

    @classmethod
    def of(cls, X: sp.csr_matrix) -> DataShape:
        sizes = np.diff(sp.csr_matrix(X).indptr).astype(np.int64)
        return cls(int(X.shape[0]), int(X.shape[1]), int(X.nnz), int((sizes * sizes).sum()))


class Recommender:
    """Base class: fit on a sparse unit x item matrix, score a batch of item sets."""

    name: ClassVar[str] = "base"
    #: True when score(x) is linear in x (item-kNN, EASE): then leaving input j out of a set lowers
    #: each score by exactly what j alone scores, and serving explains with one row per input instead
    #: of scoring the set again without each of them. A model that merely holds a linear part (the
    #: autoencoder's linear path) is not linear in its input and leaves this False.
    linear_in_input: ClassVar[bool] = False
    #: True when score_items returns an array computed for the call, which the caller may write into
    #: (serving then masks it in place instead of copying it first).
    fresh_item_scores: ClassVar[bool] = False

    #: Hyper-parameter names renamed since some models were saved, old -> new: a manifest written under
    #: an old name is read under the new one (see current_params).
    renamed_params: ClassVar[dict[str, str]] = {}

    n_items: int = 0

    @classmethod
    def current_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """`params` as a manifest of any version wrote them, under today's names."""
        return {cls.renamed_params.get(name, name): value for name, value in params.items()}

    def fit(
        self,
        X: sp.csr_matrix,
        *,
        validation: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
        progress: ProgressCallback | None = None,
    ) -> FitReport:
        """Learn from X (binary, units x items). `validation` is (input, hidden) for early stopping
        and hyper-parameter choice; models that need none may ignore it."""
        raise NotImplementedError

    def score(self, X: sp.csr_matrix) -> np.ndarray:
        """Scores (n_rows x n_items, float32) for each row's item set; higher is better.
        Input items are NOT masked here; the evaluation and serving layers mask them."""
        raise NotImplementedError

    def score_items(self, items: Sequence[int]) -> np.ndarray:
        """Scores (n_items, float32) of one item set given as distinct column indices: what a
        recommendation request asks. This default builds the one-row matrix and calls score(); models
        override it to skip that (a scipy matrix costs more to build than some models take to score)."""
        indices = np.sort(np.asarray(items, dtype=np.int32))
        indptr = np.array([0, indices.size], dtype=np.int32)
        data = np.ones(indices.size, dtype=np.float32)
        row = sp.csr_matrix((data, indices, indptr), shape=(1, self.n_items))
        return self.score(row)[0]

    def drops_without_each(
        self,
        items: Sequence[int],
        left_out: Sequence[int],
        columns: np.ndarray,
        full: np.ndarray | None = None,
    ) -> np.ndarray:
        """How much the scores of `columns` for the set `items` drop when each item of `left_out` is left
        out of the set in turn: (left_out x columns), what an explanation shares out. `full` holds those
        columns' scores for the whole set when the caller has them.

        A model linear in its input loses exactly what the left-out item alone scores (one single-item
        row each); any other model scores the set again without each item, in one batch of rows.
        Models override this with a cheaper exact way when they have one."""
        if self.linear_in_input:
            return self.score(item_rows([[j] for j in left_out], self.n_items))[:, columns]
        if full is None:
            full = self.score_items(list(items))[columns]
        without = [[j for j in items if j != out] for out in left_out]
        return np.asarray(full)[None, :] - self.score(item_rows(without, self.n_items))[:, columns]

    def save(self, path: Path) -> None:
        """Write everything needed to score into the folder `path` (which exists)."""
        raise NotImplementedError

    @classmethod
    def load(cls, path: Path) -> Recommender:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """Hyper-parameters, JSON-serialisable, for the manifest."""
        return {}

    def peak_bytes(self, shape: DataShape) -> int:
        """A rough upper bound of the memory fitting this model on data of `shape` needs, so that a
        request too large for the machine is refused before it starts (AIREC_TRAIN_MAX_MEMORY)."""
        return shape.nnz * 12

    def refit_copy(self) -> Recommender:
        """A fresh, unfitted model with every choice this fit made on validation fixed (epochs, lambda,
        neighbours, blend weight), so that fitting it without validation on more units repeats this
        configuration: the service chooses on a split, then refits on every unit it holds."""
        raise NotImplementedError


def item_rows(sets: Sequence[Sequence[int]], n_items: int) -> sp.csr_matrix:
    """One binary row per item set (distinct column indices), built as CSR directly."""
    indices = np.fromiter((j for s in sets for j in sorted(s)), dtype=np.int32)
    indptr = np.zeros(len(sets) + 1, dtype=np.int32)
    np.cumsum([len(s) for s in sets], out=indptr[1:])
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(sets), n_items))


MANIFEST = "model.json"


def write_manifest(path: Path, algorithm: str, params: dict, extra: dict | None = None) -> None:
    """Write the small `model.json` that tells `load_model` which class reads the folder."""
    import json

    body = {"algorithm": algorithm, "params": params}
    if extra:
        body.update(extra)
    (Path(path) / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True))


def read_manifest(path: Path) -> dict:
    """The parsed `model.json` of a saved model folder."""
    import json

    return json.loads((Path(path) / MANIFEST).read_text())
