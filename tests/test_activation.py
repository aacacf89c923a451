"""Which model is active: an operator's pin holds against training runs, AIREC_ACTIVATE=if-better keeps
a worse model out, and a swap never leaves a process serving something other than the pointer."""

from __future__ import annotations

import threading

import pytest

from airec import leases
from airec.db import database
from airec.serving.served import served_model
from airec.versions import service as versions
from tests.synthetic import ingest, planted, train

MODELS = "/api/v1/models"


@pytest.fixture
def if_better(settings_overrides: dict) -> dict:
    return {**settings_overrides, "activate": "if-better"}


def test_activating_by_hand_pins_the_version_until_unpinned(client):
    ingest(client, planted(units=120, seed=1)[0])
    first = train(client, {"algorithm": "itemknn"})["model_version"]
    second = train(client, {"algorithm": "ease"})["model_version"]
    assert client.get(MODELS).get_json()["pinned"] is None

    assert client.post(f"{MODELS}/{first}/activate").status_code == 200  # a rollback
    listing = client.get(MODELS).get_json()
    assert listing["active"] == first and listing["pinned"] == first
    flags = {v["version"]: v["pinned"] for v in listing["versions"]}
    assert flags == {first: True, second: False}

    run = train(client, {"algorithm": "ease"})  # scheduled or by API: trains and registers, no more
    assert run["activated"] is False and "pinned" in run["note"] and first in run["note"]
    listing = client.get(MODELS).get_json()
    assert listing["active"] == first and served_model.active.version == first
    assert {v["version"]: v["status"] for v in listing["versions"]}[run["model_version"]] == "ready"

    unpinned = client.post(f"{MODELS}/unpin")
    assert unpinned.status_code == 200 and unpinned.get_json() == {"unpinned": first, "active": first}
    assert client.post(f"{MODELS}/unpin").get_json()["unpinned"] is None  # idempotent
    run = train(client, {"algorithm": "ease"})
    assert run["activated"] is True and run["note"] is None
    assert client.get(MODELS).get_json()["active"] == run["model_version"] == served_model.active.version


def test_if_better_keeps_a_worse_model_out_and_says_why(if_better):
    from airec.app import create_app

    client = create_app(if_better).test_client()
    ingest(client, planted(units=160, seed=2)[0])
    good = train(client, {"algorithm": "ease"})
    assert good["activated"] is True
    worse = train(client, {"algorithm": "popularity"})
    assert worse["status"] == "succeeded" and worse["activated"] is False
    assert "worse than the active model" in worse["note"] and "AIREC_ACTIVATE=if-better" in worse["note"]
    assert client.get(MODELS).get_json()["active"] == good["model_version"] == served_model.active.version
    again = train(client, {"algorithm": "ease"})  # as good (same data and seed): not worse, so it goes live
    assert again["activated"] is True and served_model.active.version == again["model_version"]


def test_always_activates_every_new_model(client):
    ingest(client, planted(units=160, seed=2)[0])
    train(client, {"algorithm": "ease"})
    worse = train(client, {"algorithm": "popularity"})
    assert worse["activated"] is True and served_model.active.version == worse["model_version"]


def test_activate_setting_is_checked(settings_overrides):
    from airec.app import create_app

    with pytest.raises(ValueError, match="AIREC_ACTIVATE"):
        create_app({**settings_overrides, "activate": "sometimes"})


def test_a_poll_and_an_activation_interleaved_end_on_the_pointer(client, monkeypatch):
    """A poll read an older pointer and is still loading it when an operator activates another
    version: whatever the order of the two swaps, this process ends serving what the pointer says."""
    ingest(client, planted(units=80, seed=3)[0])
    v1, v2, v3 = (train(client, {"algorithm": a})["model_version"] for a in ("itemknn", "ease", "popularity"))
    loading, finish = threading.Event(), threading.Event()
    real_load = served_model.load

    def slow_load(version):
        if version == v2:  # the poll's load
            loading.set()
            assert finish.wait(10)
        return real_load(version)

    monkeypatch.setattr(served_model.target(), "load", slow_load)
    with database.connection_context():
        leases.set_active_version(v2)  # as another host's activation would
        served_model.swap(real_load(v1))

    def poll() -> None:
        with database.connection_context():
            served_model.sync()

    def operator() -> None:
        with database.connection_context():
            versions.activate(v3)

    poller = threading.Thread(target=poll)
    poller.start()
    assert loading.wait(10)  # the poll holds pointer v2 and is loading it
    activation = threading.Thread(target=operator)
    activation.start()
    activation.join(0.5)  # the activation moves the pointer to v3, then waits for the poll to finish
    finish.set()
    poller.join(10)
    activation.join(10)
    with database.connection_context():
        assert leases.get_active_version() == v3
    assert served_model.active.version == v3
