"""Console sessions live in the database: signing out ends a session for every copy of its cookie, on
every worker and host; a revoked key ends its sessions; AIREC_CONSOLE_SESSION_HOURS is an absolute end.

Two apps over one database stand for two hosts (each with its own memory), on SQLite and PostgreSQL.
The same check in a real browser against two gunicorn workers is in tests/test_console_browser.py.
"""

from __future__ import annotations

import hashlib
import time

import pytest

from airec.db import database
from airec.tables import ConsoleSession
from tests.test_console import bearer, csrf_token, post_form, sign_in

SECRET = "s" * 40  # every host signs cookies with the same AIREC_SECRET_KEY (deploy/compose.yaml)


def two_hosts(settings_overrides: dict, **settings):
    """(host A, host B, {role: key}): two apps, one database, keys on."""
    from airec.app import create_app
    from airec.auth.service import create_key

    config = {**settings_overrides, "auth": True, "secret_key": SECRET, **settings}
    a, b = create_app(config), create_app(config)
    with a.app_context(), database.connection_context():
        keys = {role: create_key(name=f"s-{role}", role=role)[1] for role in ("read", "admin")}
    return a, b, keys


def replay(app, cookie: str):
    """A GET / from a fresh client that holds only the copied cookie."""
    client = app.test_client()
    client.set_cookie("airec_console", cookie)
    return client.get("/")


def refused(answer) -> bool:
    return answer.status_code == 303 and answer.headers["Location"].startswith("/login")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hosts(request, settings_overrides):
    from airec.app import stop_background

    if request.param == "sqlite":
        yield two_hosts(settings_overrides)
        return
    from tests.pg_helpers import fresh_database

    with fresh_database() as url:
        a, b, keys = two_hosts({**settings_overrides, "database_url": url})
        yield a, b, keys
        for app in (a, b):  # no poller left asking for the database about to be dropped
            stop_background(app)


def test_a_cookie_copied_before_sign_out_is_refused_on_every_host(hosts):
    a, b, keys = hosts
    browser = a.test_client()
    assert sign_in(browser, keys["read"]).status_code == 303
    copied = browser.get_cookie("airec_console").value
    assert replay(a, copied).status_code == 200 and replay(b, copied).status_code == 200  # one session
    assert post_form(browser, "/logout").status_code == 303
    assert refused(replay(a, copied)) and refused(replay(b, copied))
    login = b.test_client()
    login.set_cookie("airec_console", copied)
    assert refused(login.get("/models"))
    assert "Your session has ended (signed out" in login.get("/login").get_data(as_text=True)
    with a.app_context(), database.connection_context():
        assert ConsoleSession.select().count() == 0


def test_revoking_the_key_ends_its_session_on_another_host(hosts):
    a, b, keys = hosts
    browser = b.test_client()
    sign_in(browser, keys["read"])
    assert browser.get("/").status_code == 200
    assert a.test_client().delete("/api/v1/keys/s-read", headers=bearer(keys["admin"])).status_code == 200
    assert refused(browser.get("/"))
    assert "its key was revoked" in browser.get("/login").get_data(as_text=True)


def test_the_database_holds_the_token_hash_never_the_token_or_the_key(settings_overrides):
    a, _, keys = two_hosts(settings_overrides)
    browser = a.test_client()
    sign_in(browser, keys["admin"])
    cookie = browser.get_cookie("airec_console").value
    token = a.session_interface.get_signing_serializer(a).loads(cookie)["session_token"]
    with a.app_context(), database.connection_context():
        (row,) = ConsoleSession.select().dicts()
    assert row["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(row) and keys["admin"] not in str(row) and keys["admin"] not in cookie
    assert row["key_hash"] == hashlib.sha256(keys["admin"].encode()).hexdigest()


def test_the_session_ends_at_its_absolute_lifetime_however_busy(settings_overrides):
    lifetime = 2.0
    a, _, keys = two_hosts(settings_overrides, console_session_hours=lifetime / 3600)
    browser = a.test_client()
    started = time.monotonic()
    signed = sign_in(browser, keys["read"])
    ends = signed.headers["Set-Cookie"].split("Expires=")[1].split(";")[0]
    while time.monotonic() - started < lifetime - 0.8:  # busy all along: activity never extends it
        answer = browser.get("/")
        assert answer.status_code == 200
        assert answer.headers["Set-Cookie"].split("Expires=")[1].split(";")[0] == ends  # the same end
        time.sleep(0.1)
    time.sleep(max(0.0, lifetime + 0.2 - (time.monotonic() - started)))
    assert refused(browser.get("/training"))
    assert "it expired" in browser.get("/login").get_data(as_text=True)
    fresh = csrf_token(browser)  # signing in again opens a new session (and clears the expired row)
    assert browser.post("/login", data={"api_key": keys["read"], "csrf_token": fresh}).status_code == 303
    assert browser.get("/").status_code == 200
    with a.app_context(), database.connection_context():
        assert ConsoleSession.select().count() == 1


@pytest.mark.parametrize("hours", [0, -1, 721])
def test_a_session_lifetime_out_of_range_is_refused(hours):
    from airec.config import Settings

    with pytest.raises(ValueError, match="AIREC_CONSOLE_SESSION_HOURS"):
        Settings.from_env({"console_session_hours": hours})
