"""The docs page in a real browser: Swagger UI loads offline, Authorize takes a key, Try-it-out works.

Needs Debian's Chromium (/usr/bin/chromium, installed by .ci/run) and the playwright package; skips
without them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from tests.gunicorn_helpers import serve

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api")
if not shutil.which("chromium"):
    pytest.skip("no chromium on this machine", allow_module_level=True)

BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def make_key(server, role: str) -> str:
    env = {**server.env}
    out = subprocess.run(
        [sys.executable, "-m", "airec.cli", "keys", "create", "--role", role, "--name", f"browser-{role}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return next(line for line in out.stdout.splitlines() if line.startswith("airec_"))


def test_docs_authorize_and_try_it_out(tmp_path):
    with serve(tmp_path, workers=1, env={"AIREC_AUTH": "on"}) as server:
        key = make_key(server, "read")
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            page = browser.new_page()
            requests_out: list[str] = []
            page.on("request", lambda r: requests_out.append(r.url))
            page.goto(f"{server.url}/docs")
            page.get_by_role("button", name="Authorize").first.click()
            dialog = page.locator(".auth-container").first
            dialog.locator("input").first.fill(key)
            dialog.get_by_role("button", name="Authorize").click()
            page.get_by_role("button", name="Close").first.click()

            page.locator("#operations-stats-get_api_v1_stats").click()  # expand GET /api/v1/stats
            page.get_by_role("button", name="Try it out").click()
            page.get_by_role("button", name="Execute").click()
            status = page.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=10_000)
            assert status.inner_text().strip() == "200"
            body = page.locator(".live-responses-table .microlight").first.inner_text()
            assert '"interactions"' in body
            browser.close()
        # Everything the page loaded came from the service itself: it works with no internet.
        assert requests_out and all(url.startswith(server.url) for url in requests_out), requests_out
