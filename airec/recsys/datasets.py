"""Loaders for the public benchmark datasets kept outside the repository (never copy them in).

Each loader returns a `Dataset`: a binary CSR unit x item matrix plus its kind ("ratings",
"implicit" or "baskets"). Rating data keep ratings >= 4 as positives. A missing folder raises
`DatasetMissing`, which the benchmark reports as "skipped".
"""
from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airec.recsys.data import build_matrix, encode

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = PROJECT_ROOT.parent / "shared" / "datasets"


class DatasetMissing(FileNotFoundError):
    """The dataset's folder or file is not there (the benchmark skips it)."""


@dataclass
class Dataset:
    name: str
    X: sp.csr_matrix
    kind: str

    def describe(self) -> str:
        sizes = np.diff(self.X.indptr)
        return (f"{self.name}: {self.X.shape[0]} units x {self.X.shape[1]} items, {self.X.nnz} interactions, "
                f"mean {sizes.mean():.1f} items/unit ({self.kind})")


def _file(root: Path | None, folder: str, filename: str) -> Path:
    path = Path(root or DEFAULT_ROOT) / folder / filename
    if not path.is_file():
        raise DatasetMissing(f"dataset file not found: {path}")
    return path


def _from_pairs(name: str, units: list, items: list, kind: str) -> Dataset:
    u, _ = encode(units)
    i, _ = encode(items)
    return Dataset(name, build_matrix(u, i), kind)


def _ratings(name: str, path: Path, delimiter: str, header: bool, min_rating: float = 4.0) -> Dataset:
    raw = np.loadtxt(path, delimiter=delimiter, skiprows=1 if header else 0, usecols=(0, 1, 2))
    raw = raw[raw[:, 2] >= min_rating]
    units, items = raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64)
    return _from_pairs(name, units.tolist(), items.tolist(), "ratings")


def load_ml_100k(root: Path | None = None) -> Dataset:
    """MovieLens 100K `u.data` (tab separated, no header); rating >= 4 is a positive."""
    return _ratings("ml-100k", _file(root, "ml-100k", "u.data"), "\t", header=False)


def load_ml_latest_small(root: Path | None = None) -> Dataset:
    """MovieLens latest-small `ratings.csv` (header); rating >= 4 is a positive."""
    return _ratings("ml-latest-small", _file(root, "ml-latest-small", "ratings.csv"), ",", header=True)


def load_lastfm(root: Path | None = None) -> Dataset:
    """Last.fm HetRec 2011 `user_artists.dat`: every listened (user, artist) pair is a positive."""
    raw = np.loadtxt(_file(root, "lastfm-hetrec2011-2k", "user_artists.dat"), delimiter="\t", skiprows=1,
                     usecols=(0, 1), dtype=np.int64)
    return _from_pairs("lastfm-hetrec2011-2k", raw[:, 0].tolist(), raw[:, 1].tolist(), "implicit")


def _baskets(name: str, baskets: list[list[str]]) -> Dataset:
    units, items = [], []
    for b, basket in enumerate(baskets):
        for item in basket:
            if item:
                units.append(b)
                items.append(item)
    return _from_pairs(name, units, items, "baskets")


def load_groceries(root: Path | None = None) -> Dataset:
    """arules Groceries: one comma-separated basket per line (read with csv.reader)."""
    with open(_file(root, "groceries", "groceries.csv"), newline="", encoding="utf-8") as f:
        baskets = [[item.strip() for item in row] for row in csv.reader(f)]
    return _baskets("groceries", baskets)


def load_bread_basket(root: Path | None = None) -> Dataset:
    """Bakery transactions, one row per item line: grouped by Transaction, `NONE` dropped, deduped."""
    groups: dict[str, list[str]] = {}
    with open(_file(root, "bread-basket", "BreadBasket_DMS.csv"), newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            item = row["Item"].strip()
            if item and item.upper() != "NONE":
                groups.setdefault(row["Transaction"], []).append(item)
    return _baskets("bread-basket", list(groups.values()))


def load_belgian_retail(root: Path | None = None) -> Dataset:
    """FIMI `retail.dat`: one space-separated basket of integer SKUs per line."""
    with open(_file(root, "belgian-retail", "retail.dat"), encoding="utf-8") as f:
        baskets = [line.split() for line in f if line.strip()]
    return _baskets("belgian-retail", baskets)


LOADERS: dict[str, Callable[[Path | None], Dataset]] = {
    "ml-100k": load_ml_100k,
    "ml-latest-small": load_ml_latest_small,
    "lastfm-hetrec2011-2k": load_lastfm,
    "groceries": load_groceries,
    "bread-basket": load_bread_basket,
    "belgian-retail": load_belgian_retail,
}


def load_dataset(name: str, root: Path | None = None) -> Dataset:
    """Load a dataset by its folder name (see LOADERS)."""
    if name not in LOADERS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    return LOADERS[name](root)
