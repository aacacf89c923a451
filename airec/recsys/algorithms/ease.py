"""EASE (Steck 2019): closed-form linear item-item model with a zero diagonal.

B = I - P / diag(P) with P = (X^T X + lambda I)^-1, so a row x scores x B = x - (x P) / diag(P).
Two exact ways to get there, whichever dense side is smaller:

* primal (items <= units): factorise the items x items Gram matrix and keep B (items^2 floats);
* dual (units < items, e.g. 1.9k users and 17k artists): by Woodbury,
  P = (I - X^T K^-1 X) / lambda with K = X X^T + lambda I (units x units), so a row scores
  x - (x - (x X^T) K^-1 X) / (1 - e), e_j = x_j^T K^-1 x_j for item column x_j. Only K^-1 (units^2),
  e and the training rows are kept: no items^2 matrix ever exists.

The dense side is bounded by `max_items`. lambda is chosen on validation by a short hill climb.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from airec.recsys.base import (
    DataShape,
    FitReport,
    ProgressCallback,
    Recommender,
    read_manifest,
    write_manifest,
)
from airec.recsys.data import as_csr32, fit_matrix
from airec.recsys.evaluation import validation_score

DEFAULT_GRID = (1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0)
#: On a larger primal problem lambda is first searched on this many of the most frequent items (each
#: factorisation of that proxy costs a fraction of a full one), then chosen on the full catalogue among
#: the proxy's lambda and its neighbours: 3-4 full factorisations instead of ~6. At 16k items one full
#: factorisation takes about a minute on one core.
PROXY_ITEMS = 2048
#: Above this many items the neighbours are compared on a second, wider proxy of the most frequent
#: items instead of the full catalogue, which is then factorised once, at the chosen lambda: a
#: factorisation grows with items^3, so at 20,000 items each full one costs ~15x one at 8,192 and the
#: 3-4 of the climb were most of a default training run (docs/benchmarks.md, training time by stage).
WIDE_PROXY_ITEMS = 8192
#: Rows of B a one-set score copies at a time.
_ROWS_AT_ONCE = 32
#: Item columns per block when the dual form computes e = diag(X^T K^-1 X): bounds its memory.
_DUAL_BLOCK = 4096
#: A saved dual model also keeps each item's row of X^T K^-1 (items x units float32, "reach.npy") when
#: it takes at most this many bytes: a set's (x X^T) K^-1 is then the sum of its items' rows (10 items
#: of ml-latest-small: 24 KB read) instead of a product through all of K^-1 (1.5 MB per request).
REACH_MAX_BYTES = 64 << 20


def _mapped(path: Path) -> np.ndarray:
    """The saved array memory-mapped read-only, as a plain ndarray over the mapping: np.memmap's
    Python-level indexing and wrapping cost ~17 us per request on the reach rows alone."""
    return np.asarray(np.load(path, mmap_mode="r"))


def _sum_rows(matrix: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The sum of `matrix`'s rows `idx` (float32), _ROWS_AT_ONCE rows at a time: a long set never copies
    all its rows at once."""
    out = matrix[idx[:_ROWS_AT_ONCE]].sum(axis=0, dtype=np.float32)
    for s in range(_ROWS_AT_ONCE, idx.size, _ROWS_AT_ONCE):
        out += matrix[idx[s : s + _ROWS_AT_ONCE]].sum(axis=0, dtype=np.float32)
    return out


def gram(X: sp.csr_matrix) -> np.ndarray:
    """Dense float32 X^T X (co-occurrence counts, exact in float32 below 2^24 units; weighted ones when
    typed feedback weighs the cells)."""
    X = fit_matrix(X)
    return np.asarray((X.T @ X).toarray(), dtype=np.float32)


def spd_inverse(A: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix via Cholesky (overwrites A), full symmetric, in
    A's precision (float32 halves time and memory; on the benchmark data it ranks as float64 does)."""
    potrf, potri = (lapack.spotrf, lapack.spotri) if A.dtype == np.float32 else (lapack.dpotrf, lapack.dpotri)
    c, info = potrf(A, lower=0, overwrite_a=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"Cholesky failed (info={info})")
    P, info = potri(c, lower=0, overwrite_c=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"inverse failed (info={info})")
    _mirror_upper(P)  # potri fills the upper triangle only
    # LAPACK hands back Fortran order; P is symmetric, so its transpose is the same matrix in C order
    # at no cost. A Fortran-ordered B made every sparse row x B product copy all of B (3 s at 10k items).
    return P.T if not P.flags.c_contiguous else P


def _mirror_upper(P: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle onto the lower one in place, a block of rows at a time (no n^2 copy)."""
    n = P.shape[0]
    for i in range(0, n, block):
        j = min(i + block, n)
        tile = P[i:j, i:j]
        tile[np.tril_indices(j - i, -1)] = tile.T[np.tril_indices(j - i, -1)]
        P[j:, i:j] = P[i:j, j:].T


def ease_weights(G: np.ndarray, lam: float) -> np.ndarray:
    """float32 B for one lambda from the Gram matrix (primal form), C-ordered: a sparse row times a
    Fortran-ordered B would copy all of B (items^2) in every request."""
    A = G.astype(np.float32)
    A[np.diag_indices_from(A)] += lam
    P = spd_inverse(A)  # C-ordered (see spd_inverse)
    P /= -np.diag(P)
    P[np.diag_indices_from(P)] = 0.0
    return P


class EASE(Recommender):
    """Embarrassingly shallow autoencoder; lambda picked on validation unless given."""

    name = "ease"
    linear_in_input = True
    fresh_item_scores = True  # a sum of rows or a quotient, never a view of B

    def __init__(
        self, lam: float | None = None, grid: Sequence[float] = DEFAULT_GRID, max_items: int = 20000
    ) -> None:
        self.lam = lam
        self.grid = tuple(float(g) for g in sorted(grid))
        self.max_items = int(max_items)
        self.chosen_lam: float | None = None
        self.n_items = 0
        # primal form
        self.B: np.ndarray | None = None
        # dual form
        self.K_inv: np.ndarray | None = None
        self.reach: np.ndarray | None = None  # X^T K^-1 by item, when saved (REACH_MAX_BYTES)
        self.e: np.ndarray | None = None
        self.X_train: sp.csr_matrix | None = None

    @property
    def form(self) -> str:
        return "dual" if self.K_inv is not None else "primal"

    def fit(
        self,
        X: sp.csr_matrix,
        *,
        validation: tuple[sp.csr_matrix, sp.csr_matrix] | None = None,
        progress: ProgressCallback | None = None,
    ) -> FitReport:
        start = time.perf_counter()
        self.reach = None  # rows of the weights being replaced; a save makes them anew
        X = fit_matrix(X)
        n_units, n_items = X.shape
        dense = min(n_units, n_items)
        if dense > self.max_items:
            raise ValueError(
                f"EASE needs a dense {dense} x {dense} matrix ({n_units} units, {n_items} items), over "
                f"max_items={self.max_items} (~{dense**2 * 8 / 1e9:.1f} GB); raise max_items or use "
                "another algorithm"
            )
        self.n_items = n_items
        primal = n_units >= n_items
        report = FitReport()
        if self.lam is not None or validation is None:
            lam = self.lam if self.lam is not None else 500.0
            (self._primal_solver(X) if primal else self._dual_solver(X))(lam)
        elif primal and n_items > WIDE_PROXY_ITEMS:
            lam = self._proxy_lambda(X, validation, WIDE_PROXY_ITEMS, self._proxy_lambda(X, validation))
            self._primal_solver(X)(lam)  # the Gram matrix only now: no proxy's matrices beside it
            value = validation_score(self.score, validation)
            report.history.append({"lam": lam, "val_ndcg": value})
            report.validation["val_ndcg"] = value
        else:
            solve = self._primal_solver(X) if primal else self._dual_solver(X)
            proxy = self._proxy_lambda(X, validation) if primal and n_items > PROXY_ITEMS else None
            lam = self._search(solve, validation, report, progress, start=proxy)
        self.chosen_lam = float(lam)
        report.params = self.get_params()
        report.validation["seconds"] = time.perf_counter() - start
        report.validation["form"] = self.form
        return report

    def _primal_solver(self, X: sp.csr_matrix):
        G = gram(X)

        def solve(lam: float) -> None:
            self.B, self.K_inv, self.e, self.X_train = ease_weights(G, lam), None, None, None

        return solve

    def _dual_solver(self, X: sp.csr_matrix):
        K = np.asarray((X @ X.T).toarray(), dtype=np.float64)
        Xc = sp.csc_matrix(X, dtype=np.float64)

        def solve(lam: float) -> None:
            A = K.copy()
            A[np.diag_indices_from(A)] += lam
            K_inv = spd_inverse(A)
            e = np.empty(X.shape[1], dtype=np.float64)
            for s in range(0, X.shape[1], _DUAL_BLOCK):  # e_j = x_j^T K^-1 x_j, a block of columns at once
                block = Xc[:, s : s + _DUAL_BLOCK]
                inner = block.multiply(K_inv @ block.toarray())
                e[s : s + block.shape[1]] = np.asarray(inner.sum(axis=0)).ravel()
            self.B = None
            self.K_inv = K_inv.astype(np.float32)
            self.e = e.astype(np.float32)
            self.X_train = sp.csr_matrix(X, dtype=np.float32)

        return solve

    def _proxy_lambda(
        self, X: sp.csr_matrix, validation, size: int | None = None, start: float | None = None
    ) -> float:
        """lambda chosen on the `size` (PROXY_ITEMS) most frequent items alone, validation restricted to
        them: the whole climb, or from `start` that lambda and its neighbours."""
        counts = np.asarray(X.sum(axis=0)).ravel()
        top = np.sort(np.argsort(-counts, kind="stable")[: size or PROXY_ITEMS])
        proxy = EASE(grid=self.grid, max_items=self.max_items)
        X_top, validation_top = X[:, top], (validation[0][:, top], validation[1][:, top])
        if start is None:
            proxy.fit(X_top, validation=validation_top)
            return float(proxy.chosen_lam)
        proxy.n_items = len(top)
        return proxy._search(proxy._primal_solver(X_top), validation_top, FitReport(), None, start=start)

    def _search(self, solve, validation, report: FitReport, progress, start: float | None = None) -> float:
        """Hill climb on the log grid from its middle, stopping once the metric falls (it is unimodal
        in practice), then one refinement at the geometric midpoints around the best lambda: ~6
        factorisations instead of one per grid point, at a finer resolution than the grid. From a
        `start` (the proxy's choice): that lambda and its x2 neighbours, climbing on while an edge wins."""
        grid = self.grid
        cache: dict[float, float] = {}
        best: dict = {"lam": None, "value": -np.inf, "state": None}

        def value(lam: float) -> float:
            if lam not in cache:
                solve(lam)
                cache[lam] = validation_score(self.score, validation)
                if cache[lam] > best["value"]:
                    best.update(lam=lam, value=cache[lam], state=(self.B, self.K_inv, self.e, self.X_train))
                report.history.append({"lam": lam, "val_ndcg": cache[lam]})
                if progress:
                    progress({"epoch": len(cache), "max_epochs": len(grid) + 2, "val_ndcg": cache[lam]})
            return cache[lam]

        if start is not None:
            lam, low, high = start, grid[0] / 2, grid[-1] * 2
            for _ in range(len(grid) * 2):
                up, down = min(lam * 2, high), max(lam / 2, low)
                best_here = max((lam, up, down), key=value)
                if best_here == lam:
                    break
                lam = best_here
            self.B, self.K_inv, self.e, self.X_train = best["state"]
            report.validation["val_ndcg"] = best["value"]
            return float(best["lam"])

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
        self.B, self.K_inv, self.e, self.X_train = best["state"]
        report.validation["val_ndcg"] = best["value"]
        return float(best["lam"])

    def score(self, X: sp.csr_matrix) -> np.ndarray:
        X = as_csr32(X)
        if self.K_inv is None:
            return np.asarray(X @ self.B, dtype=np.float32)
        # x - (x - (x X^T) K^-1 X) / (1 - e). Both products take the dense rows from the right of the
        # stored training matrix (CSR, and its transpose as a CSC view): no sparse x sparse product,
        # so no matrix is converted or allocated per call.
        dense_x = X.toarray()
        overlap = np.asarray(self.X_train @ dense_x.T, dtype=np.float32).T  # (rows, units)
        projected = np.asarray(self._train_t() @ (overlap @ self.K_inv).T, dtype=np.float32).T
        return self._dual_scores(dense_x, projected)

    def _dual_scores(self, dense_x: np.ndarray, projected: np.ndarray) -> np.ndarray:
        """x - (x - (x X^T) K^-1 X) / (1 - e), given x and its projection (x X^T) K^-1 X."""
        return (dense_x - (dense_x - projected) / (1.0 - self.e)).astype(np.float32, copy=False)

    def score_items(self, items: Sequence[int]) -> np.ndarray:
        """score() of one item set, without building its sparse row: the primal form sums the set's
        rows of B; the dual form reads the training units that hold the set's items from a column
        copy of the training matrix, then applies score()'s formula to the dense row."""
        idx = np.asarray(sorted(items), dtype=np.intp)
        if self.K_inv is None:
            return _sum_rows(self.B, idx)
        projected = np.asarray(self._train_t() @ self._reached(idx), dtype=np.float32)
        # _dual_scores of the binary row, element by element the same float32 operations: x = 0 gives
        # p / (1 - e), x = 1 gives 1 - (1 - p) / (1 - e), with no dense copy of x.
        one_minus_e = self._one_minus_e()
        out = projected / one_minus_e
        out[idx] = 1.0 - (1.0 - projected[idx]) / one_minus_e[idx]
        return out

    def _one_minus_e(self) -> np.ndarray:
        """1 - e (float32), made once per e."""
        return self._derived("_complement", self.e, lambda e: (1.0 - e).astype(np.float32, copy=False))

    def _derived(self, slot: str, source: Any, make: Callable[[Any], Any]) -> Any:
        """make(source), kept in `slot` until a fit or load replaces `source`."""
        cached = getattr(self, slot, None)
        if cached is None or cached[0] is not source:
            cached = (source, make(source))
            setattr(self, slot, cached)
        return cached[1]

    def _reached(self, idx: np.ndarray) -> np.ndarray:
        """(x X^T) K^-1 for the binary set `idx` (sorted): the sum of its items' saved reach rows, or
        else the training units that hold its items (a column copy of the training matrix) through
        K^-1."""
        if self.reach is not None:
            return _sum_rows(self.reach, idx)
        columns = self._train_columns()
        starts, ends = columns.indptr[idx], columns.indptr[idx + 1]
        spans = list(zip(starts, ends, strict=True))
        units = np.concatenate([columns.indices[a:b] for a, b in spans] or [np.empty(0, np.int32)])
        weights = np.concatenate([columns.data[a:b] for a, b in spans] or [np.empty(0, np.float32)])
        overlap = np.bincount(units, weights=weights, minlength=columns.shape[0]).astype(np.float32)
        return overlap @ self.K_inv

    def item_reach(self) -> np.ndarray:
        """X^T K^-1 (items x units, float32): row j is item j's training units through K^-1."""
        by_item = sp.csr_matrix(self._train_columns().T, dtype=np.float64)
        return np.asarray(by_item @ np.asarray(self.K_inv, dtype=np.float64), dtype=np.float32)

    def drops_without_each(
        self,
        items: Sequence[int],
        left_out: Sequence[int],
        columns: np.ndarray,
        full: np.ndarray | None = None,
    ) -> np.ndarray:
        """Linear in its input: leaving j out drops each score by what j alone scores, computed for the
        asked columns only: B's entries in the primal form; in the dual form the training units holding
        j, through K^-1, onto the units holding each column (never a full row of scores)."""
        out = np.asarray(left_out, dtype=np.intp)
        cols = np.asarray(columns, dtype=np.intp)
        if self.K_inv is None:
            return np.asarray(self.B[np.ix_(out, cols)], dtype=np.float32)
        by_item = self._train_columns()  # units x items
        if self.reach is not None:
            reach = np.asarray(self.reach[out], dtype=np.float32)
        else:
            reach = np.asarray(by_item[:, out].T @ self.K_inv, dtype=np.float32)  # (x X^T) K^-1, x = e_j
        projected = np.asarray(by_item[:, cols].T @ reach.T, dtype=np.float32).T  # ... times X, asked columns
        dense_x = (out[:, None] == cols[None, :]).astype(np.float32)
        return (dense_x - (dense_x - projected) / (1.0 - self.e[cols])).astype(np.float32, copy=False)

    def _train_columns(self) -> sp.csc_matrix:
        """The training matrix by item column (which units hold an item), made once per X_train."""
        return self._derived("_columns", self.X_train, lambda X: X.tocsc())

    def _train_t(self) -> sp.csc_matrix:
        """X_train transposed (a CSC view sharing its arrays), made once per X_train."""
        return self._derived("_transposed", self.X_train, lambda X: X.T)

    def save(self, path: Path) -> None:
        if self.K_inv is None:
            np.save(Path(path) / "B.npy", np.ascontiguousarray(self.B))
        else:
            np.save(Path(path) / "K_inv.npy", self.K_inv)
            np.save(Path(path) / "e.npy", self.e)
            if 4 * self.n_items * self.K_inv.shape[0] <= REACH_MAX_BYTES:
                np.save(Path(path) / "reach.npy", self.item_reach())
            sp.save_npz(Path(path) / "X_train.npz", self.X_train)
        write_manifest(path, self.name, self.get_params(), {"form": self.form})

    @classmethod
    def load(cls, path: Path) -> EASE:
        path = Path(path)
        manifest = read_manifest(path)
        params = manifest["params"]
        model = cls(
            lam=params.get("lam"),
            grid=params.get("grid", DEFAULT_GRID),
            max_items=params.get("max_items", 20000),
        )
        model.chosen_lam = params.get("chosen_lam")
        # Memory-mapped, read-only: the workers of a host share one copy of the weights in the page
        # cache (a folder is never written again once complete; a deleted one stays mapped).
        if manifest.get("form") == "dual":
            model.K_inv = _mapped(path / "K_inv.npy")
            model.e = _mapped(path / "e.npy")
            model.X_train = sp.csr_matrix(sp.load_npz(path / "X_train.npz"), dtype=np.float32)
            model.n_items = model.e.shape[0]
            if (path / "reach.npy").is_file():  # saved since the reach rows; without, K^-1 serves
                model.reach = _mapped(path / "reach.npy")
        else:
            model.B = _mapped(path / "B.npy")
            if not model.B.flags.c_contiguous:  # saved in Fortran order by an older version
                model.B = np.ascontiguousarray(model.B)
            model.n_items = model.B.shape[0]
        return model

    def get_params(self) -> dict[str, Any]:
        return {
            "lam": self.lam,
            "grid": list(self.grid),
            "max_items": self.max_items,
            "chosen_lam": self.chosen_lam,
        }

    def peak_bytes(self, shape: DataShape) -> int:
        """Primal: the float32 Gram matrix, its factorised copy and the best B kept while searching
        (12 bytes per items^2), plus validation score batches. Dual: K in float64 and its factorised
        copy, K^-1 and the kept best (24 bytes per units^2), plus column blocks of K^-1 X."""
        scores = 8 * 1024 * shape.items + 12 * shape.nnz
        if shape.units < shape.items:
            return 24 * shape.units**2 + 16 * shape.units * _DUAL_BLOCK + scores
        return 12 * shape.items**2 + scores

    def refit_copy(self) -> EASE:
        return EASE(lam=self.chosen_lam, grid=self.grid, max_items=self.max_items)
