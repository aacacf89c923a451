"""The benchmark and the service report the same numbers for the same file, seed and preprocessing.

Path A: `airec.recsys.bench` on a movielens file. Path B: `airec import` of that file, `airec train`
with AIREC_TRAIN_SEED and the same preprocessing, then the manifest's held-out numbers and
POST /api/v1/evaluation. Both must rebuild the same matrix (canonical order), preprocess it the same
way, hold out the same units and seed the models the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from airec.cli import main
from airec.recsys.bench import bench_data, bench_dataset
from airec.recsys.datasets import load_file
from tests.conftest import DATASETS

SEED = 3
MIN_SUPPORT = 3
MAX_ITEMS = 55
AE_PARAMS = {"epochs": 3}


def write_ratings(folder: Path, users: int = 200, seed: int = 0) -> Path:
    """u.data rows in random order: each user likes (4-5) most of one group of 20 items, rates a few
    other items 1-5 at random; four rare items (two ratings each) fall under MIN_SUPPORT.
    User and item names are unpadded numbers, so name order is neither file nor numeric order."""
    rng = np.random.default_rng(seed)
    groups = rng.permutation(60).reshape(3, 20) + 1
    rows = []
    for user in range(1, users + 1):
        own = groups[user % 3]
        for item in rng.choice(own, size=int(rng.integers(16, 21)), replace=False):
            rows.append((user, int(item), int(rng.choice([3, 4, 5, 5, 5]))))
        for item in rng.choice(np.setdiff1d(np.arange(1, 61), own), size=8, replace=False):
            rows.append((user, int(item), int(rng.integers(1, 6))))
    for rare in range(61, 65):
        rows += [(int(u), rare, 5) for u in rng.choice(users, size=2, replace=False) + 1]
    order = rng.permutation(len(rows))
    path = folder / "u.data"
    path.write_text("".join(f"{rows[i][0]}\t{rows[i][1]}\t{rows[i][2]}\t{880000000 + i}\n" for i in order))
    return path


@pytest.fixture
def env(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("AIREC_DATABASE_URL", f"sqlite:///{tmp_path}/agree.db")
    monkeypatch.setenv("AIREC_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("AIREC_SCHEDULER", "false")
    monkeypatch.setenv("AIREC_ACTIVATE", "always")  # each trained model is the one compared
    monkeypatch.setenv("AIREC_AUTH", "false")
    monkeypatch.setenv("AIREC_LOG_LEVEL", "WARNING")
    return tmp_path


def service_numbers(
    path: Path, algorithms: dict[str, dict], monkeypatch, *, seed: int, min_support: int, max_items: int
) -> dict[str, dict]:
    """Import, then per algorithm: train and collect the manifest's and the API's held-out numbers."""
    from airec.app import create_app
    from airec.serving.served import served_model

    monkeypatch.setenv("AIREC_TRAIN_SEED", str(seed))
    monkeypatch.setenv("AIREC_TRAIN_MIN_ITEM_SUPPORT", str(min_support))
    monkeypatch.setenv("AIREC_TRAIN_MAX_ITEMS", str(max_items))
    assert main(["import", str(path), "--format", "movielens", "--min-rating", "4"]) == 0
    out: dict[str, dict] = {}
    for algorithm, params in algorithms.items():
        assert main(["train", "--algorithm", algorithm, "--params", json.dumps(params)]) == 0
        manifest = served_model.active.manifest
        assert manifest["algorithm"] == algorithm
        client = create_app({}).test_client()
        api = {}
        for k in (10, 20, 100):
            answer = client.post("/api/v1/evaluation", json={"k": k})
            assert answer.status_code == 200, answer.get_json()
            api[k] = answer.get_json()
        out[algorithm] = {"manifest": manifest, "api": api}
    return out


def assert_agree(bench: dict, service: dict, baseline: str = "popularity") -> int:
    """Every metric both sides report is equal (1e-6); returns how many were compared."""
    compared = 0
    for algorithm, side in service.items():
        manifest, api = side["manifest"], side["api"]
        assert manifest["split"]["protocol"] == bench["protocol"]
        assert manifest["data"]["items"] == bench["shape"][1]
        assert manifest["data"]["units"] == bench["shape"][0]
        for name, test in (
            (algorithm, manifest["evaluation"]["model"]),
            (baseline, manifest["evaluation"]["popularity"]),
        ):
            expected = bench["runs"][name][0]["test"]
            shared = sorted(set(test) & set(expected))
            assert len(shared) >= 12
            for metric in shared:
                assert test[metric] == pytest.approx(expected[metric], abs=1e-6), (name, metric)
                compared += 1
        for k, answer in api.items():
            assert answer["units"] == manifest["evaluation"]["model"]["n_units"]
            for key, name in (("model", algorithm), ("popularity", baseline)):
                expected = bench["runs"][name][0]["test"]
                for metric, value in answer[key].items():
                    assert value == pytest.approx(expected[f"{metric}@{k}"], abs=1e-6), (name, metric, k)
                    compared += 1
    return compared


def test_bench_and_service_agree_on_a_movielens_file(env, monkeypatch):
    path = write_ratings(env)
    ds = load_file(path, "movielens")
    assert ds.units[:3] == ["1", "10", "100"] and ds.items[:3] == ["1", "10", "11"]  # names, sorted
    bench = bench_data(
        ds,
        1,
        ["ease", "popularity", "autoencoder"],
        seed_offset=SEED,
        min_support=MIN_SUPPORT,
        max_items=MAX_ITEMS,
        params={"autoencoder": AE_PARAMS},
    )
    assert bench["protocol"] == "strong" and bench["shape"][1] == MAX_ITEMS
    assert bench["runs"]["ease"][0]["seed"] == SEED
    service = service_numbers(
        path,
        {"ease": {}, "autoencoder": AE_PARAMS},
        monkeypatch,
        seed=SEED,
        min_support=MIN_SUPPORT,
        max_items=MAX_ITEMS,
    )
    manifest = service["ease"]["manifest"]
    assert manifest["preprocessing"] == {
        "min_item_support": MIN_SUPPORT,
        "max_items": MAX_ITEMS,
        "items_dropped": 64 - MAX_ITEMS,
    }
    assert manifest["split"]["holdout_fraction"] == 0.15 and manifest["split"]["seed"] == SEED
    assert assert_agree(bench, service) > 50
    # Not a vacuous match: the structure is learnt, and another seed holds out other units.
    assert bench["runs"]["ease"][0]["test"]["ndcg@10"] > bench["runs"]["popularity"][0]["test"]["ndcg@10"]
    other = bench_data(
        ds, 1, ["popularity"], seed_offset=SEED + 1, min_support=MIN_SUPPORT, max_items=MAX_ITEMS
    )
    assert other["runs"]["popularity"][0]["test"] != bench["runs"]["popularity"][0]["test"]


def test_bench_and_service_agree_on_a_baskets_file(env, monkeypatch):
    """Baskets are keyed by position in the file (the record id after a fresh import): leave-one-out."""
    rng = np.random.default_rng(1)
    path = env / "baskets.csv"
    path.write_text(
        "".join(
            ",".join(f"p{b % 4}-{i}" for i in rng.choice(8, int(rng.integers(2, 6)), replace=False))
            + ("," + f"x{int(rng.integers(40))}" if b % 3 == 0 else "")
            + "\n"
            for b in range(400)
        )
    )
    bench = bench_data(
        load_file(path, "baskets"), 1, ["ease", "popularity"], seed_offset=SEED, min_support=2, max_items=None
    )
    assert bench["protocol"] == "loo"
    from airec.app import create_app
    from airec.serving.served import served_model

    monkeypatch.setenv("AIREC_TRAIN_SEED", str(SEED))
    monkeypatch.setenv("AIREC_TRAIN_MIN_ITEM_SUPPORT", "2")
    assert main(["import", str(path), "--format", "baskets"]) == 0
    assert main(["train", "--algorithm", "ease"]) == 0
    answer = create_app({}).test_client().post("/api/v1/evaluation", json={"k": 10}).get_json()
    assert assert_agree(bench, {"ease": {"manifest": served_model.active.manifest, "api": {10: answer}}}) > 20


@pytest.mark.slow
@pytest.mark.datasets
def test_bench_and_service_agree_on_ml_100k(env, monkeypatch):
    path = DATASETS / "ml-100k" / "u.data"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    bench = bench_dataset("ml-100k", 1, ["ease", "popularity"], root=DATASETS, seed_offset=0)
    service = service_numbers(path, {"ease": {}}, monkeypatch, seed=0, min_support=5, max_items=4000)
    assert bench["shape"] == [942, 1008]
    assert assert_agree(bench, service) > 30
