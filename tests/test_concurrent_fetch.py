"""Issue 17.6: with AIREC_MODEL_STORE=database, processes that fetch one version at once are all served
from one complete folder (the loser of the rename uses the winner's), and `.fetch-*` folders left by
fetches that died are removed at start and on each poll once they are an hour old."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from airec.app import create_app
from airec.db import database
from airec.modelstore import folders
from airec.modelstore.database import FETCH_PREFIX, STALE_FETCH_SECONDS
from airec.serving.served import served_model
from tests.synthetic import RECOMMEND, ingest, planted, train


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_store": "database", "model_poll_seconds": 0}


@pytest.fixture
def trained(client) -> str:
    ingest(client, planted(units=160)[0])
    return train(client)["model_version"]


def start_host(settings: dict, barrier, results) -> None:
    """A process starting on a host whose models folder lacks the active model: it fetches it at start,
    then answers one recommendation. Both processes' renames into place wait for each other, so both
    fetches have checked that the folder is absent before either rename: the race, every time."""
    real_replace = os.replace

    def replace_together(src, dst, *args, **kwargs):
        if Path(src).name.startswith(FETCH_PREFIX) and not Path(dst).name.startswith("."):
            try:
                barrier.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace_together
    try:
        app = create_app(settings)
        answer = app.test_client().post(RECOMMEND, json={"items": ["g0-i0"], "k": 3})
        results.put((answer.status_code, answer.get_json()))
    except Exception as exc:  # reported to the test, which fails on it
        results.put((None, repr(exc)))


def test_two_processes_fetching_one_version_at_once_are_both_served(trained, settings_overrides, tmp_path):
    host = tmp_path / "host-b"
    settings = {**settings_overrides, "models_dir": str(host)}
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    processes = [spawn.Process(target=start_host, args=(settings, barrier, results)) for _ in range(2)]
    for process in processes:
        process.start()
    try:
        answers = [results.get(timeout=180) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    for status, body in answers:
        assert status == 200, body
        assert body["model_version"] == trained and body["fallback"] is None
    assert [p.name for p in host.iterdir() if p.is_dir()] == [trained]  # one folder, no temporaries
    assert folders.verify(host / trained)["version"] == trained


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    for each in [*path.rglob("*"), path]:
        os.utime(each, (then, then))


def test_fetch_leftovers_older_than_an_hour_are_removed_at_start_and_on_each_poll(
    trained, settings_overrides, tmp_path
):
    host = tmp_path / "host-b"
    old, recent = host / f"{FETCH_PREFIX}{trained}-0a0a0a", host / f"{FETCH_PREFIX}{trained}-0b0b0b"
    for leftover in (old, recent):
        leftover.mkdir(parents=True)
        (leftover / folders.ITEMS).write_text("[]")
    age(old, STALE_FETCH_SECONDS + 60)
    age(recent, STALE_FETCH_SECONDS - 600)  # maybe a fetch still running elsewhere: left alone
    create_app({**settings_overrides, "models_dir": str(host)})
    assert not old.exists() and recent.is_dir()
    age(recent, STALE_FETCH_SECONDS + 1)
    with database.connection_context():
        served_model.sync()  # one poll
    assert not recent.exists()
    assert [p.name for p in host.iterdir() if p.is_dir()] == [trained]
