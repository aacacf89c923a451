"""Item-based nearest neighbours: cosine item-item similarity, sparsified to each item's top-n."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from airec.recsys.base import (
    DataShape,
    FitReport,
    ProgressCallback,
    Recommender,
    read_manifest,
    write_manifest,
)
from airec.recsys.data import fit_matrix
from airec.recsys.evaluation import validation_score

DEFAULT_GRID = (10, 25, 50, 100, 200, 400, 800)


def cosine_neighbours(X: sp.csr_matrix) -> tuple[sp.csr_matrix, np.ndarray]:
    """Cosine similarity (zero diagonal) as CSR plus each entry's rank within its row (0 = best)."""
    X = fit_matrix(X)
    C = sp.csr_matrix(X.T @ X, dtype=np.float64)
    norms = np.sqrt(C.diagonal())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    S = sp.csr_matrix(sp.diags(inv) @ C @ sp.diags(inv))
    S.setdiag(0.0)
    S.eliminate_zeros()
    S.sort_indices()
    sizes = np.diff(S.indptr)
    rows = np.repeat(np.arange(S.shape[0]), sizes)
    order = np.lexsort((-S.data, rows))
    rank = np.empty(S.nnz, dtype=np.int64)
    rank[order] = np.arange(S.nnz) - np.repeat(S.indptr[:-1], sizes)
    return sp.csr_matrix(S, dtype=np.float32), rank


def keep_top(S: sp.csr_matrix, rank: np.ndarray, n: int) -> sp.csr_matrix:
    """Only each row's n most similar items."""
    keep = rank < n
    rows = np.repeat(np.arange(S.shape[0]), np.diff(S.indptr))
    return sp.csr_matrix((S.data[keep], (rows[keep], S.indices[keep])), shape=S.shape, dtype=np.float32)


class ItemKNN(Recommender):
    """score = X @ S with S the top-n cosine neighbours of each item; n picked on validation."""

    name = "itemknn"
    linear_in_input = True

    def __init__(self, n_neighbors: int | None = None, grid: Sequence[int] = DEFAULT_GRID) -> None:
        self.n_neighbors = n_neighbors
        self.grid = tuple(int(g) for g in grid)
        self.chosen_n: int | None = None
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)
        self.n_items = 0

    def fit(
        self,
        X: sp.csr_matrix,
        *,
        validation: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
        progress: ProgressCallback | None = None,
    ) -> FitReport:
        start = time.perf_counter()
        S, rank = cosine_neighbours(X)
        self.n_items = S.shape[0]
        report = FitReport()
        if self.n_neighbors is not None or validation is None:
            n = self.n_neighbors or 100
        else:
            best, n = -1.0, self.grid[0]
            for i, cand in enumerate(self.grid):
                self.similarity = keep_top(S, rank, cand)
                value = validation_score(self.score, validation)
                report.history.append({"n_neighbors": cand, "val_ndcg": value})
                if progress:
                    progress({"epoch": i + 1, "max_epochs": len(self.grid), "val_ndcg": value})
                if value > best:
                    best, n = value, cand
            report.validation["val_ndcg"] = best
        self.chosen_n = int(n)
        self.similarity = keep_top(S, rank, n)
        report.params = self.get_params()
        report.validation["seconds"] = time.perf_counter() - start
        return report

    def score(self, X: sp.csr_matrix) -> np.ndarray:
        X = sp.csr_matrix(X, dtype=np.float32)
        return np.asarray((X @ self.similarity).toarray(), dtype=np.float32)

    def save(self, path: Path) -> None:
        sp.save_npz(Path(path) / "similarity.npz", self.similarity)
        write_manifest(path, self.name, self.get_params())

    @classmethod
    def load(cls, path: Path) -> ItemKNN:
        params = read_manifest(path)["params"]
        model = cls(n_neighbors=params.get("n_neighbors"), grid=params.get("grid", DEFAULT_GRID))
        model.chosen_n = params.get("chosen_n")
        model.similarity = sp.csr_matrix(sp.load_npz(Path(path) / "similarity.npz"), dtype=np.float32)
        model.n_items = model.similarity.shape[0]
        return model

    def get_params(self) -> dict[str, Any]:
        return {"n_neighbors": self.n_neighbors, "grid": list(self.grid), "chosen_n": self.chosen_n}

    def peak_bytes(self, shape: DataShape) -> int:
        """X^T X in float64 and its cosine copy, each entry's rank and the sort's temporaries: about 60
        bytes per co-occurring item pair (at most items^2, at most the sum of squared unit sizes)."""
        return 60 * min(shape.items**2, shape.pairs) + 12 * shape.nnz

    def refit_copy(self) -> ItemKNN:
        return ItemKNN(n_neighbors=self.chosen_n, grid=self.grid)
