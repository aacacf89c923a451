"""The markers say what a test needs: a helper that starts PostgreSQL databases or gunicorn servers fails a
test that uses it without the marker, so deselecting a marker leaves out exactly the tests that need it."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from tests import marks

ROOT = Path(__file__).resolve().parents[1]


def test_a_helper_refuses_a_test_without_its_marker(request):
    assert marks.current[0] is request.node
    with pytest.raises(pytest.fail.Exception, match="is not marked @pytest.mark.postgres"):
        marks.require("postgres", "PostgreSQL")


def test_a_helper_accepts_a_test_with_its_marker(request):
    request.node.add_marker(pytest.mark.gunicorn)
    marks.require("gunicorn", "a gunicorn server")


def test_every_marker_is_registered_and_only_slow_and_wheel_are_left_out_by_default():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    section = config["tool:pytest"]
    registered = {line.split(":")[0].strip() for line in section["markers"].strip().splitlines()}
    assert registered == {"slow", "postgres", "redis", "gunicorn", "browser", "datasets", "wheel"}
    assert "--strict-markers" in section["addopts"].split()
    assert '-m "not slow and not wheel"' in section["addopts"]
    assert section["pythonpath"].strip() == "."
