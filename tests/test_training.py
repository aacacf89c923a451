"""POST /api/v1/training and the run resources: lifecycle, progress, conflicts, refusals, warm start."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from airec.serving.served import served_model
from airec.training import pipeline, publish
from tests.synthetic import TRAINING, ingest, partners, planted, recommend, train, wait_for_run

SMALL_AE = {"epochs": 6, "hidden": 32, "latent": 8}


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


@pytest.fixture
def gate(monkeypatch):
    """Hold every run in 'running' until the test opens the gate (always opened at teardown)."""
    event = threading.Event()
    entered = threading.Event()
    real = pipeline.train_and_publish

    def held(**kwargs):
        entered.set()
        assert event.wait(30), "test never opened the gate"
        return real(**kwargs)

    monkeypatch.setattr(pipeline, "train_and_publish", held)
    event.entered = entered
    yield event
    event.set()


def get_run(client, run_id: int) -> dict:
    return client.get(f"{TRAINING}/runs/{run_id}").get_json()["run"]


def test_run_lifecycle_conflict_and_listing(client, gate):
    ingest(client, planted(units=80)[0])
    response = client.post(TRAINING, json={"algorithm": "autoencoder", "params": SMALL_AE})
    assert response.status_code == 202
    queued = response.get_json()["run"]
    assert queued["status"] == "queued"
    assert queued["algorithm"] == "autoencoder"
    assert queued["params"] == {"params": SMALL_AE, "warm_start": False}
    assert queued["model_version"] is None and queued["error"] is None

    assert gate.entered.wait(10)
    running = get_run(client, queued["id"])
    assert running["status"] == "running"
    assert running["started_at"] is not None and running["finished_at"] is None

    conflict = client.post(TRAINING, json={"algorithm": "itemknn"})
    assert conflict.status_code == 409
    assert conflict.get_json()["run"]["id"] == queued["id"]
    assert conflict.get_json()["run"]["status"] == "running"

    gate.set()
    done = wait_for_run(client, queued["id"])
    assert done["status"] == "succeeded", done
    assert done["model_version"] == served_model.active.version
    # Epochs chosen on validation, then the refit on every unit for the best epoch count.
    manifest = served_model.active.manifest
    best_epoch = manifest["params"]["best_epoch"]
    assert manifest["refit"]["units"] == manifest["data"]["units"] > manifest["data"]["train_units"]
    epochs = [entry for entry in done["history"] if "epoch" in entry and "stage" not in entry]
    assert [entry["epoch"] for entry in epochs] == list(range(1, len(epochs) + 1))
    assert all(np.isfinite(e["train_loss"]) and e["max_epochs"] == SMALL_AE["epochs"] for e in epochs)
    refit = [entry for entry in done["history"] if entry.get("stage") == "refit"]
    assert [entry["epoch"] for entry in refit] == list(range(1, best_epoch + 1))
    progress = done["progress"]
    assert progress["epoch"] == progress["max_epochs"] == best_epoch
    assert progress["train_loss"] > 0 and progress["val_loss"] > 0
    assert done["duration_seconds"] > 0
    assert done["started_at"] <= done["finished_at"]

    # The lease is free again: a second run is accepted and listed first.
    second = train(client, {"algorithm": "itemknn"})
    runs = client.get(f"{TRAINING}/runs").get_json()["runs"]
    assert [r["id"] for r in runs] == [second["id"], queued["id"]]
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    assert "history" not in runs[0]
    assert client.get(f"{TRAINING}/runs?limit=1").get_json()["runs"][0]["id"] == second["id"]
    bad_limit = client.get(f"{TRAINING}/runs?limit=0")
    assert bad_limit.status_code == 422 and "limit: " in bad_limit.get_json()["message"]


def test_too_little_data_fails_with_a_clear_message(client):
    ingest(client, [{"user": "a", "items": ["x", "y"]}, {"user": "b", "items": ["y", "z"]}])
    run = train(client, {"algorithm": "itemknn"}, expect="failed")
    assert "not enough data" in run["error"]
    assert run["model_version"] is None and run["finished_at"] is not None
    assert served_model.active is None


def test_unexpected_errors_are_recorded_on_the_run(client, monkeypatch):
    ingest(client, planted(units=40)[0])

    def broken(**kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pipeline, "train_and_publish", broken)
    run = train(client, {"algorithm": "itemknn"}, expect="failed")
    assert run["error"] == "RuntimeError: disk on fire"
    monkeypatch.undo()
    train(client, {"algorithm": "itemknn"})  # the lease was released


@pytest.mark.parametrize(
    "body, field",
    [
        ({"algorithm": "nope"}, "algorithm"),
        ({"algorithm": 5}, "algorithm"),
        ({"warm_start": "maybe"}, "warm_start"),
        ({"params": []}, "params"),
        ({"colour": "blue"}, "colour"),
        ({"algorithm": "itemknn", "params": {"epochs": 5}}, "epochs"),
        ({"algorithm": "autoencoder", "params": {"epochs": "many"}}, "autoencoder"),
        ({"algorithm": "autoencoder", "params": {"hidden": [1]}}, "autoencoder"),
        ({"algorithm": "autoencoder", "params": {"epochs": 10**18}}, "epochs must be between"),
        ({"algorithm": "autoencoder", "params": {"latent": 10**6}}, "latent must be between"),
        ({"algorithm": "auto", "params": {"epochs": 3}}, "auto"),
    ],
)
def test_bad_requests_are_422_before_queueing(client, body, field):
    response = client.post(TRAINING, json=body)
    assert response.status_code == 422, response.get_json()
    assert field in response.get_json()["message"]
    assert client.get(f"{TRAINING}/runs").get_json()["runs"] == []


def test_unknown_run_is_a_json_404(client):
    response = client.get(f"{TRAINING}/runs/12345")
    assert response.status_code == 404
    assert response.get_json()["message"] == "No training run with id 12345."


def test_warm_start_carries_known_items_weights_over(client):
    """With a learning rate too small to move them, the new model's weights for the items the old one
    knew are the old weights (matched by name, not position); items new since then start fresh."""
    records, _ = planted(units=160)
    ingest(client, records)
    train(client, {"algorithm": "autoencoder", "params": SMALL_AE})
    old = served_model.active
    new_records, new_groups = planted(groups=2, units=80, prefix="new-", noise=0.0, seed=5)
    ingest(client, new_records)
    frozen = {**SMALL_AE, "epochs": 1, "lr": 1e-6, "linear_path": False}
    run = train(client, {"algorithm": "autoencoder", "params": frozen, "warm_start": True})
    assert run["params"]["warm_start"] is True
    new = served_model.active
    assert new.version != old.version and new.manifest["warm_start"] is True

    mapping = np.array([old.index.get(name, -1) for name in new.items])
    known = np.flatnonzero(mapping >= 0)
    assert known.size == old.n_items and (mapping < 0).sum() == len(new_groups)
    old_net, new_net = old.model.net, new.model.net
    carried = (new_net.enc_in.item_weight[known] - old_net.enc_in.item_weight[mapping[known]]).detach()
    assert float(carried.abs().max()) < 1e-3
    decoder = (new_net.dec_out.weight[known] - old_net.dec_out.weight[mapping[known]]).detach()
    assert float(decoder.abs().max()) < 1e-3

    cold = train(client, {"algorithm": "autoencoder", "params": frozen})
    assert cold["status"] == "succeeded" and served_model.active.manifest["warm_start"] is False
    cold_net = served_model.active.model.net
    fresh = (cold_net.enc_in.item_weight[known] - old_net.enc_in.item_weight[mapping[known]]).detach()
    assert float(fresh.abs().max()) > 0.01  # a cold start does not land on the old weights by chance


def test_warm_start_learns_new_items(client):
    ingest(client, planted(units=160)[0])
    train(client, {"algorithm": "autoencoder", "params": SMALL_AE})
    new_records, new_groups = planted(groups=2, units=80, prefix="new-", noise=0.0, seed=5)
    ingest(client, new_records)
    train(client, {"algorithm": "autoencoder", "params": SMALL_AE, "warm_start": True})
    new = served_model.active
    assert new.manifest["warm_start"] is True
    basket = ["new-g1-i0", "new-g1-i1"]
    answer = recommend(client, basket, k=3)
    assert answer["unknown_items"] == [] and answer["model_version"] == new.version
    assert {e["item"] for e in answer["items"]} <= partners(basket[0], new_groups)


def test_warm_start_with_other_sizes_fails_clearly(client):
    ingest(client, planted(units=60)[0])
    train(client, {"algorithm": "autoencoder", "params": SMALL_AE})
    run = train(
        client,
        {"algorithm": "autoencoder", "params": {**SMALL_AE, "hidden": 16}, "warm_start": True},
        expect="failed",
    )
    assert "same hidden/latent sizes" in run["error"]


def test_runs_can_be_read_while_a_run_holds_the_lease(client, gate):
    """Reading runs is never blocked by a training run holding the lease: the reads finish while the
    run is still held at the gate."""
    ingest(client, planted(units=40)[0])
    run_id = client.post(TRAINING, json={"algorithm": "itemknn"}).get_json()["run"]["id"]
    assert gate.entered.wait(10)
    statuses: list[int] = []
    reader = threading.Thread(
        target=lambda: statuses.extend(client.get(f"{TRAINING}/runs/{run_id}").status_code for _ in range(5))
    )
    reader.start()
    reader.join(30)
    assert not reader.is_alive() and not gate.is_set() and statuses == [200] * 5
    gate.set()
    assert wait_for_run(client, run_id)["status"] == "succeeded"


def test_warm_start_without_an_active_autoencoder_is_recorded_as_cold(client):
    ingest(client, planted(units=60)[0])
    train(client, {"algorithm": "itemknn"})
    run = train(client, {"algorithm": "autoencoder", "params": SMALL_AE, "warm_start": True})
    assert run["params"]["warm_start"] is True  # what was asked
    assert served_model.active.manifest["warm_start"] is False  # what happened


def test_old_versions_are_pruned_but_never_the_active_one(client, app):
    from airec import leases
    from airec.db import database
    from airec.modelstore import folders
    from airec.tables import ModelVersion

    settings = app.config["AIREC"]
    settings.keep_versions = 2
    ingest(client, planted(units=40)[0])
    versions = [train(client, {"algorithm": "popularity"})["model_version"] for _ in range(3)]
    assert folders.complete_versions(settings.models_dir) == versions[1:]
    with database.connection_context():
        assert ModelVersion.get_by_id(versions[0]).status == "archived"
        leases.set_active_version(versions[1])  # e.g. rolled back to an older version
        settings.keep_versions = 1
        removed = publish.prune_versions(settings)
    assert removed == [] and folders.complete_versions(settings.models_dir) == versions[1:]


def test_units_with_single_items_only_fail_with_a_clear_message(client):
    ingest(client, [{"user": f"u{i}", "items": [f"item{i % 3}"]} for i in range(30)])
    run = train(client, {"algorithm": "itemknn"}, expect="failed")
    assert run["error"].startswith("not enough data to train: no validation unit has an item to hold out")


def test_a_catalogue_over_the_ease_limit_trains_the_autoencoder_without_its_linear_path(settings_overrides):
    from airec.app import create_app

    records, _ = planted(units=200)
    small = create_app({**settings_overrides, "ease_max_items": 10}).test_client()
    ingest(small, records)
    train(small, {"algorithm": "ease"}, expect="failed")  # EASE itself is refused over the limit
    train(small, {"algorithm": "autoencoder", "params": {"epochs": 3}})
    assert served_model.active.algorithm == "autoencoder"
    assert served_model.active.model.linear_model is None  # no items x items matrix was built
