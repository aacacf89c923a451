"""Held-out data of a fit: the split into train, validation and test units, and the evaluation of
the chosen model (and a popularity baseline) on the test units, stored in the model's manifest."""

from __future__ import annotations

from airec.recsys.algorithms import ALGORITHMS
from airec.recsys.evaluation import MAX_HOLDOUT, Split, evaluate, make_split
from airec.training.choices import EVAL_KS, TrainingRefused


def split_units(X, *, holdout_fraction: float, seed: int, baskets: bool) -> Split:
    """Train, validation and test units; refused when no validation unit has an item to hold out."""
    split = make_split(
        X,
        "auto",
        holdout_fraction=holdout_fraction,
        max_holdout=MAX_HOLDOUT,
        seed=seed,
        kind="baskets" if baskets else None,
    )
    if split.validation[1].nnz == 0:
        raise TrainingRefused(
            "not enough data to train: no validation unit has an item to hold out "
            "(a user or basket needs at least 2 items to be held out; too few have)"
        )
    return split


def describe_split(split: Split, *, holdout_fraction: float, seed: int) -> dict:
    """The manifest's record of how the units were split."""
    return {
        "protocol": split.protocol,
        "seed": seed,
        "holdout_fraction": holdout_fraction,
        "max_holdout": MAX_HOLDOUT,
        "order": "canonical",
    }


def evaluate_split(model, split: Split) -> dict:
    """The model and a popularity baseline on the held-out test units, full catalogue."""
    popularity = ALGORITHMS["popularity"]()
    popularity.fit(split.train)
    X_in, X_hidden = split.test
    return {
        "protocol": split.protocol,
        "model": evaluate(model, X_in, X_hidden, ks=EVAL_KS),
        "popularity": evaluate(popularity, X_in, X_hidden, ks=EVAL_KS),
    }
