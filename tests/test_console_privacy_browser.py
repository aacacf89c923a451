"""Deleting a user and reading the audit log in the console, in real headless Chromium against real
gunicorn (2 workers, keys on): the confirmation names the count, the deletion takes effect on every
worker, the Audit page shows it by a hash. Screenshots and axe checks as in test_console_browser.py."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from tests.gunicorn_helpers import serve
from tests.test_console_browser import (
    ARTIFACTS,
    TOO_WIDE,
    VIEWPORTS,
    browser,  # noqa: F401  (the module's Chromium, a fixture)
    call,
    check_accessible,
    opened,
)
from tests.test_docs_browser import make_key

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator:
    # Stats read fresh: a worker that did not take the deletion may otherwise answer them up to
    # AIREC_READ_CACHE_SECONDS (1 s) old, as documented; this test checks the deletion, not that cache.
    env = {"AIREC_AUTH": "on", "AIREC_RETRAIN_AFTER_DELETE": "off", "AIREC_READ_CACHE_SECONDS": "0"}
    with serve(tmp_path_factory.mktemp("console-privacy"), workers=2, env=env) as live:
        live.keys = {"admin": make_key(live, "admin")}
        records = [
            {"user": "a/b", "items": [f"i{n}" for n in range(12)]},
            {"user": "a/b", "items": ["i1", "i2"]},
        ]
        records += [{"user": f"u{n}", "items": [f"i{n % 12}", f"i{(n + 1) % 12}"]} for n in range(30)]
        assert call(live, "POST", "/api/v1/interactions", json={"records": records}).status_code == 201
        yield live


def stats(server) -> dict:
    return call(server, "GET", "/api/v1/stats").json()


def test_delete_a_user_after_a_confirmation_naming_the_count_then_read_the_audit_log(browser, server):  # noqa: F811
    assert stats(server)["interactions"] == 74
    document = call(server, "GET", "/api/v1/users/a/b/data")  # streamed by gunicorn
    assert document.status_code == 200 and len(document.json()["interactions"]) == 14
    with opened(browser, server) as page:
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Delete user").click()
        check_accessible(page, "delete user, form")
        page.get_by_label("User").fill("a/b")
        page.get_by_role("button", name="Continue").click()
        assert page.locator("#delete-count").inner_text().startswith("14 interactions will be deleted")
        check_accessible(page, "delete user, confirmation")
        assert stats(server)["interactions"] == 74  # nothing happened before the confirmation
        page.get_by_role("button", name="Delete a/b and 14 interactions").click()
        assert "14 interactions removed" in page.locator(".flashes").inner_text()
        for _ in range(6):  # new connections: both workers agree
            assert stats(server)["interactions"] == 60
            assert call(server, "GET", "/api/v1/users/a/b/data").status_code == 404
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
        row = page.locator('tr[data-action="user.deleted"]')
        assert row.count() == 1
        assert "sha256:" + hashlib.sha256(b"a/b").hexdigest() in row.inner_text()
        assert "browser-admin" in row.inner_text() and "a/b" not in page.locator("table.audit").inner_text()
        page.get_by_label("Action").select_option("user.deleted")
        page.get_by_role("button", name="Filter").click()
        assert page.locator("tr[data-action]").count() == 1
        check_accessible(page, "audit, filtered")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_the_pages_fit_phones_and_desktops_and_pass_axe(browser, server, viewport):  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    paths = {
        "audit": "/audit",
        "delete-user": "/users/delete",
        "delete-user-confirm": "/users/delete?user=u3",
    }
    with opened(browser, server, viewport=viewport) as page:
        for name, path in paths.items():
            page.goto(server.url + path, wait_until="load")
            page.screenshot(path=str(ARTIFACTS / f"{name}-{viewport}.png"), full_page=True)
            assert page.evaluate(TOO_WIDE, VIEWPORTS[viewport]["width"]) == [], name
            check_accessible(page, f"{name} ({viewport})")
