"""Most-popular baseline: every unit gets the same ranking, by how many training units hold an item."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from airec.recsys.base import FitReport, ProgressCallback, Recommender, read_manifest, write_manifest
from airec.recsys.data import binarize


class Popularity(Recommender):
    """Item counts. The floor any personalised model must clear."""

    name = "popularity"

    def __init__(self) -> None:
        self.counts = np.zeros(0, dtype=np.float32)
        self.n_items = 0

    def fit(
        self,
        X: sp.csr_matrix,
        *,
        validation: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
        progress: ProgressCallback | None = None,
    ) -> FitReport:
        start = time.perf_counter()
        X = binarize(X)
        self.counts = np.asarray(X.sum(axis=0), dtype=np.float32).ravel()
        self.n_items = X.shape[1]
        if progress:
            progress({"epoch": 1, "max_epochs": 1})
        return FitReport(params=self.get_params(), validation={"seconds": time.perf_counter() - start})

    def score(self, X: sp.csr_matrix) -> np.ndarray:
        return np.tile(self.counts, (X.shape[0], 1))

    def save(self, path: Path) -> None:
        np.savez(Path(path) / "weights.npz", counts=self.counts)
        write_manifest(path, self.name, self.get_params())

    @classmethod
    def load(cls, path: Path) -> Popularity:
        read_manifest(path)
        model = cls()
        with np.load(Path(path) / "weights.npz") as f:
            model.counts = f["counts"].astype(np.float32)
        model.n_items = model.counts.size
        return model

    def get_params(self) -> dict[str, Any]:
        return {}

    def refit_copy(self) -> Popularity:
        return Popularity()
