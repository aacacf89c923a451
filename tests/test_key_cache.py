"""Verified keys are cached for AIREC_KEY_CACHE_SECONDS: a revoked key is refused by the worker that
revoked it at once and by every other worker within that time, and a cached key never outlives its
revocation by more. Two apps over one database stand for two gunicorn workers; each cache's clock is
driven by the test instead of the wall clock."""

from __future__ import annotations

import pytest

from airec.auth.service import flush_last_used


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def workers(settings_overrides, make_app):
    """(worker A, worker B, their clocks): two apps over one SQLite file, keys on, 5-second cache."""
    from airec.auth import cache

    apps, clocks = [], []
    for _ in range(2):
        app = make_app({**settings_overrides, "auth": True, "key_cache_seconds": 5.0})
        clock = Clock()
        app.extensions["airec_key_cache"].clock = clock
        apps.append(app)
        clocks.append(clock)
    # B stands for another process: a revocation made through A does not reach B's memory.
    cache._caches.discard(apps[1].extensions["airec_key_cache"])
    return apps[0], apps[1], clocks[0], clocks[1]


def _make_keys():
    from airec.auth.service import create_key
    from airec.db import database

    with database.connection_context():
        _, admin = create_key(name="ops", role="admin")
        _, read = create_key(name="dashboard", role="read")
    return admin, read


def test_a_revoked_key_is_refused_by_every_worker_within_the_cache_time(workers):
    a, b, clock_a, clock_b = workers
    admin, read = _make_keys()
    client_a, client_b = a.test_client(), b.test_client()
    assert client_b.get("/api/v1/stats", headers=bearer(read)).status_code == 200  # B caches it
    assert client_a.get("/api/v1/stats", headers=bearer(read)).status_code == 200  # A caches it too

    assert client_a.delete("/api/v1/keys/dashboard", headers=bearer(admin)).status_code == 200
    assert client_a.get("/api/v1/stats", headers=bearer(read)).status_code == 401  # A: at once

    clock_b.now += 4.9  # B still trusts its verification (documented: up to 5 s)
    assert client_b.get("/api/v1/stats", headers=bearer(read)).status_code == 200
    clock_b.now += 0.1  # 5 s after B read the key from the database
    refused = client_b.get("/api/v1/stats", headers=bearer(read))
    assert refused.status_code == 401
    assert "revoked" in refused.json["message"]


def test_using_a_cached_key_never_extends_its_life(workers):
    a, b, _, clock_b = workers
    admin, read = _make_keys()
    client_a, client_b = a.test_client(), b.test_client()
    assert client_b.get("/api/v1/stats", headers=bearer(read)).status_code == 200  # read at t=0
    for _ in range(4):  # used again and again: each hit must not renew the entry
        clock_b.now += 1.2
        assert client_b.get("/api/v1/stats", headers=bearer(read)).status_code == 200
    assert client_a.delete("/api/v1/keys/dashboard", headers=bearer(admin)).status_code == 200  # t=4.8
    clock_b.now += 0.2  # t=5.0: 0.2 s after the revocation, 5 s after the database read
    assert client_b.get("/api/v1/stats", headers=bearer(read)).status_code == 401


def test_a_key_is_read_again_once_its_entry_expires(workers, monkeypatch):
    """While cached, the database is not asked; after the cache time it is (a role change shows)."""
    from airec.auth import service
    from airec.db import database
    from airec.tables import ApiKey

    _, b, _, clock_b = workers
    _, read = _make_keys()
    client_b = b.test_client()
    lookups = []
    original = ApiKey.get_or_none.__func__

    def counting(cls, *args, **kwargs):
        lookups.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(service.ApiKey, "get_or_none", classmethod(counting))
    for _ in range(3):
        assert client_b.get("/api/v1/stats", headers=bearer(read)).status_code == 200
    assert len(lookups) == 1
    with database.connection_context():
        ApiKey.update(role="ingest").where(ApiKey.name == "dashboard").execute()
    clock_b.now += 5.0
    assert client_b.get("/api/v1/stats", headers=bearer(read)).status_code == 403  # the new role
    assert len(lookups) == 2


def test_cache_off_looks_every_key_up(settings_overrides):
    from airec.app import create_app
    from airec.auth import cache

    a = create_app({**settings_overrides, "auth": True, "key_cache_seconds": 0})
    b = create_app({**settings_overrides, "auth": True, "key_cache_seconds": 0})
    cache._caches.discard(b.extensions["airec_key_cache"])
    admin, read = _make_keys()
    assert b.test_client().get("/api/v1/stats", headers=bearer(read)).status_code == 200
    assert a.test_client().delete("/api/v1/keys/dashboard", headers=bearer(admin)).status_code == 200
    assert b.test_client().get("/api/v1/stats", headers=bearer(read)).status_code == 401


def test_unknown_keys_are_not_cached(workers):
    """A key created after a failed attempt works at once (only valid keys are remembered)."""
    _, b, _, _ = workers
    _make_keys()
    client_b = b.test_client()
    bogus = "airec_" + "x" * 43
    assert client_b.get("/api/v1/stats", headers=bearer(bogus)).status_code == 401
    assert client_b.get("/api/v1/stats", headers=bearer(bogus)).status_code == 401


def test_cache_setting_is_bounded(monkeypatch):
    from airec.config import Settings

    monkeypatch.setenv("AIREC_KEY_CACHE_SECONDS", "600")
    with pytest.raises(ValueError, match="KEY_CACHE_SECONDS"):
        Settings.from_env()
    monkeypatch.setenv("AIREC_KEY_CACHE_SECONDS", "2.5")
    assert Settings.from_env().key_cache_seconds == 2.5


def test_last_used_is_written_by_the_background_writer(workers):
    from airec.db import database
    from airec.tables import ApiKey

    _, b, _, _ = workers
    _, read = _make_keys()
    assert b.test_client().get("/api/v1/stats", headers=bearer(read)).status_code == 200
    flush_last_used()
    with database.connection_context():
        assert ApiKey.get(ApiKey.name == "dashboard").last_used_at is not None
