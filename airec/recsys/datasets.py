"""Loaders for the public benchmark datasets kept outside the repository (never copy them in), and for
any file in a format `airec import` reads (`load_file`).

Each loader returns a `Dataset`: a binary CSR unit x item matrix, its kind ("ratings", "implicit" or
"baskets"), and the unit and item keys of its rows and columns. Keys are the names `airec import`
stores (user "196", item "242" for ml-100k), or a basket's 1-based position in the file, and the
matrix is in the canonical order of `data.canonical_matrix`, which the service uses too. Rating data
keep ratings >= 4 as positives. A missing folder raises `DatasetMissing` ("skipped" by the benchmark).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from airec.recsys.data import UnitKey, canonical_matrix, encode

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = PROJECT_ROOT.parent / "shared" / "datasets"
FILE_FORMATS = {"movielens": "ratings", "baskets": "baskets"}  # format -> kind
MIN_RATING = 4.0

# Column names as airec.imports recognises them in a header.
_USER_COLUMNS = {"user", "userid", "user_id"}
_ITEM_COLUMNS = {"item", "itemid", "item_id", "movieid", "movie_id"}


class DatasetMissing(FileNotFoundError):
    """The dataset's folder or file is not there (the benchmark skips it)."""


@dataclass
class Dataset:
    name: str
    X: sp.csr_matrix
    kind: str
    units: list[UnitKey] = field(default_factory=list)
    items: list[str] = field(default_factory=list)

    def describe(self) -> str:
        sizes = np.diff(self.X.indptr)
        return (
            f"{self.name}: {self.X.shape[0]} units x {self.X.shape[1]} items, {self.X.nnz} interactions, "
            f"mean {sizes.mean():.1f} items/unit ({self.kind})"
        )


def _file(root: Path | None, folder: str, filename: str) -> Path:
    path = Path(root or DEFAULT_ROOT) / folder / filename
    if not path.is_file():
        raise DatasetMissing(f"dataset file not found: {path}")
    return path


def _from_pairs(name: str, units: list, items: list, kind: str) -> Dataset:
    u, unit_keys = encode(units)
    i, item_keys = encode(items)
    X, unit_keys, item_keys = canonical_matrix(u, i, unit_keys, item_keys)
    return Dataset(name, X, kind, unit_keys, item_keys)


def _lines(path: Path) -> Iterator[str]:
    with open(path, encoding="utf-8-sig") as f:
        for line in f:
            yield line.rstrip("\r\n")


def _rating_rows(path: Path) -> Iterator[list[str]]:
    """[user, item, rating, timestamp or ""] per row of u.data (whitespace), ratings.dat (`::`) or a
    table with a userId,movieId,rating(,timestamp) header, as `airec import --format movielens` reads."""
    lines = (line for line in _lines(path) if line.strip())
    first = next(lines, None)
    if first is None:
        return
    if first.lower().startswith("userid"):
        delimiter = max(",\t;", key=first.count)
        columns = [c.strip().lower() for c in next(csv.reader([first], delimiter=delimiter))]
        u = next(k for k, c in enumerate(columns) if c in _USER_COLUMNS)
        i = next(k for k, c in enumerate(columns) if c in _ITEM_COLUMNS)
        r = columns.index("rating")
        t = columns.index("timestamp") if "timestamp" in columns else None
        for f in csv.reader(lines, delimiter=delimiter):
            yield [f[u], f[i], f[r], f[t] if t is not None else ""]
        return
    for line in [first, *lines]:
        row = line.split("::") if "::" in line else line.split()
        yield [*row[:3], row[3] if len(row) > 3 else ""]


def read_ratings(path: Path, min_rating: float = MIN_RATING) -> tuple[list[str], list[str]]:
    """(users, items) of the rows rated >= min_rating, parsed as `airec import --format movielens` does:
    u.data (whitespace), ratings.dat (`::`) or a table with a userId,movieId,rating header."""
    users: list[str] = []
    items: list[str] = []
    for row in _rating_rows(path):
        if float(row[2]) >= min_rating:
            users.append(row[0])
            items.append(row[1])
    return users, items


def read_timed_ratings(path: Path, min_rating: float = MIN_RATING) -> list[tuple[str, str, float]]:
    """(user, item, timestamp) of the rows rated >= min_rating, in file order (for time splits); the
    file must have timestamps (u.data, ratings.dat, ml-latest's ratings.csv do)."""
    out = []
    for row in _rating_rows(path):
        if not row[3]:
            raise ValueError(f"{path}: a rating without a timestamp; a time split needs them")
        if float(row[2]) >= min_rating:
            out.append((row[0], row[1], float(row[3])))
    return out


def read_baskets(path: Path) -> list[list[str]]:
    """Baskets as `airec import --format baskets` reads them: whitespace separated for .dat files and
    files whose first 100 non-empty lines hold no comma, else comma separated; empty lines skipped."""
    lines = [line for line in _lines(path) if line.strip()]
    commas = not str(path).lower().endswith(".dat") and any("," in line for line in lines[:100])
    if not commas:
        return [line.split() for line in lines]
    return [[item.strip() for item in row if item.strip()] for row in csv.reader(lines)]


def _ratings(name: str, path: Path, min_rating: float = MIN_RATING) -> Dataset:
    users, items = read_ratings(path, min_rating)
    return _from_pairs(name, users, items, "ratings")


def load_ml_100k(root: Path | None = None) -> Dataset:
    """MovieLens 100K `u.data` (tab separated, no header); rating >= 4 is a positive."""
    return _ratings("ml-100k", _file(root, "ml-100k", "u.data"))


def load_ml_latest_small(root: Path | None = None) -> Dataset:
    """MovieLens latest-small `ratings.csv` (header); rating >= 4 is a positive."""
    return _ratings("ml-latest-small", _file(root, "ml-latest-small", "ratings.csv"))


def load_lastfm(root: Path | None = None) -> Dataset:
    """Last.fm HetRec 2011 `user_artists.dat`: every listened (user, artist) pair is a positive."""
    rows = [line.split("\t") for line in _lines(_file(root, "lastfm-hetrec2011-2k", "user_artists.dat"))]
    rows = [r for r in rows[1:] if len(r) >= 2]
    return _from_pairs("lastfm-hetrec2011-2k", [r[0] for r in rows], [r[1] for r in rows], "implicit")


def _baskets(name: str, baskets: list[list[str]]) -> Dataset:
    """Basket b (0-based) gets unit key b + 1, its position in the source."""
    units, items = [], []
    for b, basket in enumerate(baskets):
        for item in basket:
            if item:
                units.append(b + 1)
                items.append(item)
    return _from_pairs(name, units, items, "baskets")


def load_groceries(root: Path | None = None) -> Dataset:
    """arules Groceries: one comma-separated basket per line."""
    return _baskets("groceries", read_baskets(_file(root, "groceries", "groceries.csv")))


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
    return _baskets("belgian-retail", read_baskets(_file(root, "belgian-retail", "retail.dat")))


def load_file(path: Path | str, fmt: str, *, min_rating: float = MIN_RATING) -> Dataset:
    """Any file `airec import` reads in `fmt` ("movielens" or "baskets"), keyed and ordered the same way
    as the service's data after that import (users by name, baskets by position, items by name)."""
    path = Path(path)
    if fmt not in FILE_FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FILE_FORMATS)}")
    if not path.is_file():
        raise DatasetMissing(f"dataset file not found: {path}")
    if fmt == "movielens":
        return _ratings(path.name, path, min_rating)
    return _baskets(path.name, read_baskets(path))


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
