"""The Experiments pages and the overview's take rate, in real headless Chromium against real gunicorn
(2 workers, keys on): an admin starts an experiment from two versions, a bad form names its field, both
workers serve the variants, the page counts their impressions, and the admin stops it after a
confirmation. Screenshots and axe checks as in test_console_browser.py."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.gunicorn_helpers import planted_records, serve, wait_until
from tests.test_console_browser import (
    ARTIFACTS,
    TOO_WIDE,
    VIEWPORTS,
    browser,  # noqa: F401  (the module's Chromium, a fixture)
    call,
    check_accessible,
    opened,
    wait_run,
)
from tests.test_docs_browser import make_key

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator:
    env = {"AIREC_AUTH": "on", "AIREC_ACTIVATE": "always"}
    with serve(tmp_path_factory.mktemp("console-experiments"), workers=2, env=env) as live:
        live.keys = {"admin": make_key(live, "admin")}
        records = planted_records(users=120, groups=6, group_size=5, per_user=4, seed=2)
        assert call(live, "POST", "/api/v1/interactions", json={"records": records}).status_code == 201
        for _ in range(2):
            started = call(live, "POST", "/api/v1/training", json={"algorithm": "itemknn"})
            assert started.status_code == 202, started.text
            assert wait_run(live, started.json()["run"]["id"])["status"] == "succeeded"
        live.versions = sorted(v["version"] for v in call(live, "GET", "/api/v1/models").json()["versions"])
        yield live


def experiment(server, name: str) -> dict:
    return call(server, "GET", f"/api/v1/experiments/{name}").json()


def ask(server, users: range) -> list[dict]:
    """Each user's recommendations, each on a new connection (either worker answers)."""
    answers = []
    for n in users:
        answer = call(server, "GET", f"/api/v1/users/u{n}/recommendations", params={"k": 3})
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    return answers


def test_an_admin_starts_an_experiment_watches_it_and_stops_it(browser, server):  # noqa: F811
    first, second = server.versions
    with opened(browser, server, refusals=(422,)) as page:
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Experiments").click()
        assert "No experiment yet." in page.locator("table.experiments").inner_text()
        check_accessible(page, "experiments, empty")
        page.get_by_label("Model version").nth(0).select_option(first)
        page.get_by_label("Model version").nth(1).select_option(second)
        page.get_by_role("button", name="Start the experiment").click()  # no name yet
        assert "name: Missing data" in page.get_by_role("alert").inner_text()
        assert page.locator("#experiment-name").get_attribute("aria-invalid") == "true"
        check_accessible(page, "experiments, refused form")
        assert call(server, "GET", "/api/v1/experiments").json() == []  # nothing stored
        page.locator("#experiment-name").fill("knn-ab")
        page.locator("#variant-1-weight").fill("50")
        page.get_by_role("button", name="Start the experiment").click()
        page.wait_for_url(f"{server.url}/experiments/knn-ab")
        assert page.locator("#experiment-status").inner_text() == "running"
        assert "is running" in page.locator(".flashes").inner_text()

        answered: list[dict] = []

        def both_variants_served() -> bool:  # the other worker picks it up at its next model poll
            answered.extend(ask(server, range(30)))
            return {a["variant"] for a in answered[-30:]} == {"control", "new"}

        wait_until(both_variants_served, timeout=10)
        answered.extend(ask(server, range(30)))
        assert {a["variant"]: a["model_version"] for a in answered[-30:]} == {"control": first, "new": second}
        in_experiment = sum(1 for a in answered if a["variant"] is not None)

        def counted() -> int:
            return sum(v["impressions"] for v in experiment(server, "knn-ab")["variants"])

        wait_until(lambda: counted() == in_experiment, timeout=10)  # each worker writes them each second
        page.reload()
        shown = page.locator("td[data-impressions]").evaluate_all(
            "cells => cells.map(c => c.dataset.impressions)"
        )
        assert sum(int(n) for n in shown) == in_experiment >= 60
        assert "not enough data" in page.locator("#verdict").inner_text()
        check_accessible(page, "experiment, running")

        page.get_by_role("link", name="Stop the experiment").click()
        check_accessible(page, "experiment, stop confirmation")
        assert experiment(server, "knn-ab")["status"] == "running"  # nothing before the confirmation
        page.get_by_role("button", name="Stop knn-ab").click()
        page.wait_for_url(f"{server.url}/experiments/knn-ab")
        assert page.locator("#experiment-status").inner_text() == "stopped"
        assert experiment(server, "knn-ab")["status"] == "stopped"
        wait_until(lambda: {a["variant"] for a in ask(server, range(10))} == {None}, timeout=10)

        page.get_by_role("navigation", name="Main").get_by_role("link", name="Overview").click()
        assert page.locator("#take-rate-chart").count() == 1
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
        actions = page.locator("tr[data-action^='experiment.']").all_inner_texts()
        assert len(actions) == 2 and all("browser-admin" in row and "knn-ab" in row for row in actions)


def _running(server) -> str:
    """The running experiment's name, started through the API when none runs."""
    for listed in call(server, "GET", "/api/v1/experiments").json():
        if listed["status"] == "running":
            return listed["name"]
    first, second = server.versions
    body = {
        "name": "layout",
        "variants": [{"name": "control", "model_version": first}, {"name": "new", "model_version": second}],
    }
    assert call(server, "POST", "/api/v1/experiments", json=body).status_code == 201
    return "layout"


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_the_pages_fit_phones_and_desktops_and_pass_axe(browser, server, viewport):  # noqa: F811
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = _running(server)
    ask(server, range(5))
    time.sleep(1.5)  # the impressions' flush, for the overview's chart
    paths = {
        "experiments": "/experiments",
        "experiment": f"/experiments/{name}",
        "experiment-stop": f"/experiments/{name}/stop",
        "overview-take-rate": "/",
    }
    with opened(browser, server, viewport=viewport) as page:
        for label, path in paths.items():
            page.goto(server.url + path, wait_until="load")
            page.screenshot(path=str(ARTIFACTS / f"{label}-{viewport}.png"), full_page=True)
            assert page.evaluate(TOO_WIDE, VIEWPORTS[viewport]["width"]) == [], label
            check_accessible(page, f"{label} ({viewport})")
        assert page.locator("#take-rate-chart").count() == 1
