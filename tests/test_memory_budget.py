"""AIREC_TRAIN_MAX_MEMORY: every algorithm estimates its peak memory before it fits, and a fit that
would not fit is refused with a message naming the size and the setting (item-kNN included)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from airec.config import DEFAULT_TRAIN_MEMORY_SHARE, Settings, parse_size, physical_memory
from airec.recsys.algorithms import EASE, AutoEncoder, ItemKNN, Popularity
from airec.recsys.base import DataShape
from airec.serving.served import served_model
from tests.synthetic import ingest, planted, train


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512M", 512 * 2**20),
        ("12G", 12 * 2**30),
        ("2GiB", 2 * 2**30),
        ("1.5g", int(1.5 * 2**30)),
        ("1000", 1000),
        ("64kb", 65536),
    ],
)
def test_sizes_parse(text, size):
    assert parse_size(text) == size


def test_a_bad_size_is_refused_with_the_setting_named(monkeypatch):
    monkeypatch.setenv("AIREC_TRAIN_MAX_MEMORY", "lots")
    with pytest.raises(ValueError, match="bad size 'lots'"):
        Settings.from_env()


def test_the_default_budget_is_a_share_of_the_machine():
    assert Settings().train_memory_budget == int(physical_memory() * DEFAULT_TRAIN_MEMORY_SHARE)
    assert Settings(train_max_memory="3G").train_memory_budget == 3 * 2**30


def test_estimates_grow_as_each_algorithm_does():
    tall = DataShape(units=100_000, items=20_000, nnz=1_000_000, pairs=30_000_000)
    ease = EASE().peak_bytes(tall)
    assert 12 * 20_000**2 <= ease < 13 * 20_000**2  # the float32 Gram, its factor and the kept best
    wide = DataShape(units=2_000, items=20_000, nnz=100_000, pairs=5_000_000)
    assert EASE().peak_bytes(wide) < ease / 10  # the dual form: units^2, not items^2
    assert ItemKNN().peak_bytes(tall) == 60 * 30_000_000 + 12 * 1_000_000  # bounded by the pairs
    network = AutoEncoder(linear_path=False).peak_bytes(tall)
    assert AutoEncoder().peak_bytes(tall) == network + ease
    assert AutoEncoder(linear_path=False, latent=400).peak_bytes(tall) > network
    assert Popularity().peak_bytes(tall) < 2**25


def test_shape_of_a_matrix():
    X = sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=np.float32))
    assert DataShape.of(X) == DataShape(units=3, items=3, nnz=7, pairs=4 + 4 + 9)


@pytest.mark.parametrize("algorithm", ["itemknn", "ease", "autoencoder"])
def test_a_fit_over_the_budget_is_refused_with_size_and_setting(settings_overrides, algorithm):
    from airec.app import create_app

    client = create_app({**settings_overrides, "train_max_memory": "64K"}).test_client()
    ingest(client, planted(units=60)[0])
    run = train(client, {"algorithm": algorithm}, expect="failed")
    assert run["error"].startswith(f"{algorithm} on 60 units x 48 items needs about ")
    assert "more than AIREC_TRAIN_MAX_MEMORY=0 MiB" in run["error"]
    assert served_model.active is None


def test_auto_leaves_out_the_candidates_over_the_budget(settings_overrides):
    from airec.app import create_app

    client = create_app({**settings_overrides, "train_max_memory": "32K"}).test_client()
    ingest(client, planted(units=60)[0])
    train(client, {"algorithm": "auto"})
    candidates = served_model.active.manifest["candidates"]
    assert served_model.active.algorithm == "popularity"
    assert all("AIREC_TRAIN_MAX_MEMORY" in candidates[n]["error"] for n in ("autoencoder", "ease", "itemknn"))
