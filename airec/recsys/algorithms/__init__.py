"""The algorithms by name (name -> class), and `load_model` that reads `model.json` to pick the class."""

from __future__ import annotations

from pathlib import Path

from airec.recsys.algorithms.autoencoder import AutoEncoder
from airec.recsys.algorithms.ease import EASE
from airec.recsys.algorithms.itemknn import ItemKNN
from airec.recsys.algorithms.popularity import Popularity
from airec.recsys.base import Recommender, read_manifest

ALGORITHMS: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "itemknn": ItemKNN,
    "ease": EASE,
    "autoencoder": AutoEncoder,
}


def load_model(path: Path) -> Recommender:
    """Load whichever model was saved into the folder `path`."""
    algorithm = read_manifest(Path(path))["algorithm"]
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r} in {path}")
    return ALGORITHMS[algorithm].load(Path(path))


def params_with_old_names(algorithm: str, params: dict) -> dict:
    """A manifest's parameters under today's names and, for clients written before a rename, under
    their old names too (e.g. the autoencoder's `linear_weight` also as `blend`)."""
    cls = ALGORITHMS.get(algorithm)
    if cls is None:
        return dict(params)
    current = cls.current_params(params)
    return {**current, **{old: current[new] for old, new in cls.renamed_params.items() if new in current}}


__all__ = [
    "ALGORITHMS",
    "load_model",
    "params_with_old_names",
    "AutoEncoder",
    "EASE",
    "ItemKNN",
    "Popularity",
]
