"""A hung fit (issue 17.2): AIREC_TRAIN_STALL_SECONDS and AIREC_TRAIN_TIMEOUT kill the child, fail the
run with an error that names the setting and the time, free the lease; the next scheduled run starts as
usual. A fit that works without reporting (CPU advancing) is kept alive by the child's heartbeat."""

from __future__ import annotations

import multiprocessing
import re
import time

import pytest

from airec import leases
from airec.db import database
from airec.training import fitting, isolation, scheduler
from airec.training.lease import TRAINING_LEASE
from tests import hung_fits
from tests.synthetic import ingest, planted, train, wait_for_run

STALL = 3.0


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {
        **settings_overrides,
        "model_poll_seconds": 0,
        "algorithm": "itemknn",
        "train_stall_seconds": STALL,
        "train_timeout": "8s",
    }


def lease_holder() -> str | None:
    with database.connection_context():
        return leases.holder(TRAINING_LEASE)


def scheduled_run(app, client, slot: int) -> dict:
    with database.connection_context():
        outcome = scheduler.tick(app.config["AIREC"], slot)
    assert outcome.startswith("started run "), outcome
    return wait_for_run(client, int(outcome.rsplit(" ", 1)[1]))


def test_a_fit_that_stops_reporting_is_killed_and_the_next_scheduled_run_starts(app, client, monkeypatch):
    ingest(client, planted(units=40)[0])
    monkeypatch.setattr(fitting, "fit_and_write", hung_fits.sleeps)
    run = train(client, expect="failed")
    assert re.fullmatch(
        r"stalled: the training process reported no progress for \d s \(AIREC_TRAIN_STALL_SECONDS=3\); "
        "it was killed",
        run["error"],
    ), run["error"]
    assert run["history"][0]["epoch"] == 1 and run["model_version"] is None
    assert lease_holder() is None

    monkeypatch.undo()
    assert scheduled_run(app, client, 1)["status"] == "succeeded"


def test_a_fit_past_the_time_limit_is_killed_though_it_reports(app, client, monkeypatch):
    ingest(client, planted(units=40)[0])
    monkeypatch.setattr(fitting, "fit_and_write", hung_fits.reports_for_ever)
    run = train(client, expect="failed")
    assert re.fullmatch(
        r"timed out: the fit ran for \d+ s, past AIREC_TRAIN_TIMEOUT=8s \(8 s\); "
        "the training process was killed",
        run["error"],
    ), run["error"]
    assert len(run["history"]) > 20  # it kept reporting all along
    assert lease_holder() is None
    monkeypatch.undo()
    assert scheduled_run(app, client, 1)["status"] == "succeeded"


def test_a_fit_working_silently_longer_than_the_stall_limit_is_not_killed(client, monkeypatch):
    """One long native call reports nothing; the child's heartbeat (CPU time advancing) keeps it."""
    ingest(client, planted(units=40)[0])
    monkeypatch.setattr(fitting, "fit_and_write", hung_fits.works_silently)
    run = train(client)
    assert run["model_version"] is not None and run["error"] is None


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("train_timeout", "soon", "AIREC_TRAIN_TIMEOUT: bad duration 'soon'"),
        ("train_stall_seconds", 0.0, "AIREC_TRAIN_STALL_SECONDS must be positive"),
    ],
)
def test_bad_limits_are_refused_at_start_naming_the_setting(settings_overrides, name, value, words):
    from airec.config import Settings

    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        Settings.from_env({**settings_overrides, name: value})


def test_a_stopped_training_process_is_a_stall_and_is_killed():
    """SIGSTOP freezes every thread of the child, its heartbeat too: the parent kills it at the limit."""
    started = time.monotonic()
    with pytest.raises(isolation.FitStalled) as raised:
        isolation.run_in_child(hung_fits.stops, None, limits=isolation.FitLimits(stall=2.0, timeout=60))
    assert 2.0 <= raised.value.idle < 10 and time.monotonic() - started < 30
    assert str(raised.value).startswith("the training process sent no progress for ")
    assert not [p for p in multiprocessing.active_children() if p.name == "airec-fit"]  # killed, reaped
