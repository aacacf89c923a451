"""Markers that must say what a test needs: a helper that starts PostgreSQL databases or gunicorn
servers calls `require(...)`, which fails a test that uses it without the marker (so `-m "not postgres"`
on a machine without PostgreSQL deselects every test that needs it, and nothing else)."""

from __future__ import annotations

import pytest

#: The test being set up or run (set by tests/conftest.py's pytest_runtest_setup hook).
current: list[pytest.Item | None] = [None]


def require(marker: str, what: str) -> None:
    """Fail the running test unless it carries @pytest.mark.<marker>."""
    item = current[0]
    if item is not None and item.get_closest_marker(marker) is None:
        pytest.fail(f"{item.nodeid} uses {what} but is not marked @pytest.mark.{marker}", pytrace=False)
