"""EASE (Steck 2019): closed-form linear item-item model with a zero diagonal.

B = I - P / diag(P) with P = (X^T X + lambda I)^-1. Memory and time grow with items^2 and items^3,
hence the `max_items` guard. lambda is chosen on validation by a short hill climb over a log grid.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from airec.recsys.base import FitReport, ProgressCallback, Recommender, read_manifest, write_manifest
from airec.recsys.data import binarize
from airec.recsys.evaluation import validation_score

DEFAULT_GRID = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0)


def gram(X: sp.csr_matrix) -> np.ndarray:
    """Dense float64 X^T X."""
    X = binarize(X)
    return np.asarray((X.T @ X).toarray(), dtype=np.float64)


def ease_weights(G: np.ndarray, lam: float) -> np.ndarray:
    """float32 B for one lambda via Cholesky (much faster than a general inverse)."""
    A = G.copy()
    A[np.diag_indices_from(A)] += lam
    c, info = lapack.dpotrf(A, lower=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky failed (info={info})")
    P, info = lapack.dpotri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse failed (info={info})")
    P = np.triu(P) + np.triu(P, 1).T  # potri fills the upper triangle only
    B = P / (-np.diag(P))
    B[np.diag_indices_from(B)] = 0.0
    return B.astype(np.float32)


class EASE(Recommender):
    """Embarrassingly shallow autoencoder; lambda picked on validation unless given."""

    name = "ease"

    def __init__(
        self, lam: float | None = None, grid: Sequence[float] = DEFAULT_GRID, max_items: int = 20000
    ) -> None:
        self.lam = lam
        self.grid = tuple(float(g) for g in sorted(grid))
        self.max_items = int(max_items)
        self.chosen_lam: float | None = None
        self.B = np.zeros((0, 0), dtype=np.float32)
        self.n_items = 0

    def fit(
        self,
        X: sp.csr_matrix,
        *,
        validation: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
        progress: ProgressCallback | None = None,
    ) -> FitReport:
        start = time.perf_counter()
        n_items = X.shape[1]
        if n_items > self.max_items:
            raise ValueError(
                f"EASE needs a dense items x items matrix: {n_items} items exceed max_items={self.max_items} "
                f"(~{n_items ** 2 * 8 / 1e9:.1f} GB); raise max_items or use another algorithm"
            )
        self.n_items = n_items
        G = gram(X)
        report = FitReport()
        if self.lam is not None or validation is None:
            lam = self.lam if self.lam is not None else 500.0
            self.B = ease_weights(G, lam)
        else:
            lam = self._search(G, validation, report, progress)  # leaves the best B in self.B
        self.chosen_lam = float(lam)
        report.params = self.get_params()
        report.validation["seconds"] = time.perf_counter() - start
        return report

    def _search(self, G: np.ndarray, validation, report: FitReport, progress) -> float:
        """Hill climb on the log grid from its middle, stopping once the metric falls (it is unimodal
        in practice), then one refinement at the geometric midpoints around the best lambda: ~6
        factorisations instead of one per grid point, at a finer resolution than the grid."""
        grid = self.grid
        cache: dict[float, float] = {}
        best: dict = {"lam": None, "value": -np.inf, "B": None}

        def value(lam: float) -> float:
            if lam not in cache:
                self.B = ease_weights(G, lam)
                cache[lam] = validation_score(self.score, validation)
                if cache[lam] > best["value"]:
                    best.update(lam=lam, value=cache[lam], B=self.B)
                report.history.append({"lam": lam, "val_ndcg": cache[lam]})
                if progress:
                    progress({"epoch": len(cache), "max_epochs": len(grid) + 2, "val_ndcg": cache[lam]})
            return cache[lam]

        i = len(grid) // 2
        step = 1 if i + 1 < len(grid) and value(grid[i + 1]) > value(grid[i]) else -1
        if step == 1:
            i += 1
        while 0 <= i + step < len(grid) and value(grid[i + step]) > value(grid[i]):
            i += step
        i = grid.index(best["lam"])
        for j in (i - 1, i + 1):
            if 0 <= j < len(grid):
                value(float(np.sqrt(grid[i] * grid[j])))
        self.B = best["B"]
        report.validation["val_ndcg"] = best["value"]
        return float(best["lam"])

    def score(self, X: sp.csr_matrix) -> np.ndarray:
        X = sp.csr_matrix(X, dtype=np.float32)
        return np.asarray(X @ self.B, dtype=np.float32)

    def save(self, path: Path) -> None:
        np.save(Path(path) / "B.npy", self.B)
        write_manifest(path, self.name, self.get_params())

    @classmethod
    def load(cls, path: Path) -> EASE:
        params = read_manifest(path)["params"]
        model = cls(lam=params.get("lam"), grid=params.get("grid", DEFAULT_GRID),
                    max_items=params.get("max_items", 20000))
        model.chosen_lam = params.get("chosen_lam")
        model.B = np.load(Path(path) / "B.npy")
        model.n_items = model.B.shape[0]
        return model

    def get_params(self) -> dict[str, Any]:
        return {"lam": self.lam, "grid": list(self.grid), "max_items": self.max_items,
                "chosen_lam": self.chosen_lam}

    def refit_copy(self) -> EASE:
        return EASE(lam=self.chosen_lam, grid=self.grid, max_items=self.max_items)
