"""The console's Experiments pages and the overview's take rate, through the Flask test client with keys
on: an admin starts an experiment from two versions and stops it (CSRF, audited as the console's key);
a read key can do neither; a bad form names the field and stores nothing."""

from __future__ import annotations

from html import unescape

import pytest

from tests.test_console import bearer, csrf_token, post_form, seeded, sign_in  # noqa: F401  (fixture)

EXPERIMENTS = "/api/v1/experiments"


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


pytestmark = pytest.mark.usefixtures("fresh_popularity_cache")


def form(first: str, second: str, name: str = "knn-ab", **extra) -> dict:
    return {
        "name": name,
        "variant-0-name": "control",
        "variant-0-model_version": first,
        "variant-0-weight": "50",
        "variant-1-name": "new",
        "variant-1-model_version": second,
        "variant-1-weight": "50",
        **extra,
    }


def stored(client, keys) -> list[dict]:
    return client.get(EXPERIMENTS, headers=bearer(keys["admin"])).get_json()


def text(answer) -> str:
    return unescape(answer.get_data(as_text=True))


def test_an_admin_starts_watches_and_stops_an_experiment(auth_client, keys, seeded):  # noqa: F811
    first, second = seeded["versions"]
    sign_in(auth_client, keys["admin"])
    page = text(auth_client.get("/experiments"))
    assert "No experiment yet." in page and f'<option value="{second}"' in page
    assert 'href="/experiments"' in page  # in the navigation
    started = post_form(auth_client, "/experiments", form(first, second), token_from="/experiments")
    assert started.status_code == 303 and started.headers["Location"] == "/experiments/knn-ab"
    (experiment,) = stored(auth_client, keys)
    assert experiment["status"] == "running"
    assert [(v["name"], v["model_version"], v["weight"]) for v in experiment["variants"]] == [
        ("control", first, 50.0),
        ("new", second, 50.0),
    ]
    answers = []
    for user in (f"u{n}" for n in range(20)):  # answers from the variants: impressions counted
        answer = auth_client.get(f"/api/v1/users/{user}/recommendations?k=3", headers=bearer(keys["read"]))
        assert answer.status_code == 200 and answer.get_json()["variant"] in ("control", "new")
        answers.append(answer.get_json())
    taken = answers[0]  # one take, naming its recommendation
    event = {
        "user": "u0",
        "items": [taken["items"][0]["item"]],
        "recommendation_id": taken["recommendation_id"],
    }
    sent = auth_client.post("/api/v1/interactions", json={"records": [event]}, headers=bearer(keys["ingest"]))
    assert sent.status_code == 201
    auth_client.application.extensions["airec_scope"].impressions.flush()
    shown = text(auth_client.get("/experiments/knn-ab"))
    assert "running" in shown and "not enough data" in shown and "every variant needs 1,000" in shown
    counted = stored(auth_client, keys)[0]["variants"]
    assert sum(v["impressions"] for v in counted) == 20 and sum(v["takes"] for v in counted) == 1
    for v in counted:
        assert f'data-impressions="{v["impressions"]}"' in shown
    assert 'href="/experiments/knn-ab/stop"' in shown
    confirm = text(auth_client.get("/experiments/knn-ab/stop"))
    assert "Stop the experiment" in confirm and stored(auth_client, keys)[0]["status"] == "running"
    stopped = post_form(auth_client, "/experiments/knn-ab/stop", token_from="/experiments/knn-ab/stop")
    assert stopped.status_code == 303 and stored(auth_client, keys)[0]["status"] == "stopped"
    after = text(auth_client.get("/experiments/knn-ab"))
    assert "is stopped" in after and 'href="/experiments/knn-ab/stop"' not in after
    assert auth_client.get("/experiments/knn-ab/stop").status_code == 409
    audit = auth_client.get("/api/v1/audit", headers=bearer(keys["admin"])).get_json()["entries"]
    rows = [(e["action"], e["actor"], e["target"]) for e in audit if e["action"].startswith("experiment.")]
    assert rows == [
        ("experiment.stopped", "test-admin", "knn-ab"),
        ("experiment.started", "test-admin", "knn-ab"),
    ]
    overview = text(auth_client.get("/"))  # the overview's take rate per day counts today's impressions
    table = overview.split('id="take-rate-table"')[1].split("</table>")[0]
    today = table.split("<tr>")[-1]
    assert 'id="take-rate-chart"' in overview and '<td class="num">20</td><td class="num">1</td>' in today
    assert '<td class="num">5.00%</td>' in today


def test_read_keys_cannot_start_or_stop_and_forms_need_csrf(auth_client, keys, seeded):  # noqa: F811
    first, second = seeded["versions"]
    reader = auth_client.application.test_client()
    sign_in(reader, keys["read"])
    assert reader.get("/experiments").status_code == 403
    token = csrf_token(reader, "/")
    assert 'href="/experiments"' not in text(reader.get("/"))  # not in a reader's navigation
    forged = reader.post("/experiments", data={**form(first, second), "csrf_token": token})
    assert forged.status_code == 403 and stored(auth_client, keys) == []
    sign_in(auth_client, keys["admin"])
    no_token = auth_client.post("/experiments", data=form(first, second))
    assert no_token.status_code == 400 and "security token" in text(no_token)
    assert stored(auth_client, keys) == []
    assert post_form(auth_client, "/experiments", form(first, second)).status_code == 303
    assert reader.post("/experiments/knn-ab/stop", data={"csrf_token": token}).status_code == 403
    assert auth_client.post("/experiments/knn-ab/stop").status_code == 400
    assert stored(auth_client, keys)[0]["status"] == "running"
    overview = reader.get("/")
    assert overview.status_code == 200 and 'id="take-rate-none"' in text(overview)


@pytest.mark.parametrize(
    "change, field, says",
    [
        ({"name": ""}, "name", "Missing data"),
        ({"name": "bad name!"}, "name", "letters, digits"),
        ({"variant-1-model_version": "no-such-version"}, "variant-1-model_version", "does not exist"),
        ({"variant-0-model_version": ""}, "variant-0-model_version", "Missing data"),
        ({"variant-1-weight": "lots"}, "variant-1-weight", "Not a valid number"),
        ({"variant-1-weight": "nan"}, "variant-1-weight", "Special numeric values"),
        ({"variant-0-weight": "0", "variant-1-weight": "0"}, "variants", "sum to a positive number"),
        ({"variant-1-name": "control"}, "variants", "names must differ"),
        ({"variant-3-model_version": "missing", "variant-3-name": "x"}, "variant-3-model_version", "missing"),
    ],
)
def test_a_bad_form_names_the_field_and_stores_nothing(auth_client, keys, seeded, change, field, says):  # noqa: F811
    first, second = seeded["versions"]
    sign_in(auth_client, keys["admin"])
    refused = post_form(auth_client, "/experiments", form(first, second, **change), token_from="/experiments")
    page = text(refused)
    assert refused.status_code == 422, page
    assert says in page and f'id="{field}-error"' in page
    if field != "variants":
        assert f'aria-describedby="{field}-error"' in page  # the message is tied to its field
    assert stored(auth_client, keys) == []
    audit = auth_client.get("/api/v1/audit", headers=bearer(keys["admin"])).get_json()["entries"]
    assert not [e for e in audit if e["action"].startswith("experiment.")]


def test_a_second_experiment_conflicts_and_bad_names_in_paths_are_refused(auth_client, keys, seeded):  # noqa: F811
    first, second = seeded["versions"]
    sign_in(auth_client, keys["admin"])
    assert post_form(auth_client, "/experiments", form(first, second)).status_code == 303
    conflict = post_form(auth_client, "/experiments", form(first, second, name="another"))
    assert conflict.status_code == 409 and "stop it first" in text(conflict)
    assert [e["name"] for e in stored(auth_client, keys)] == ["knn-ab"]
    assert auth_client.get("/experiments/nothing").status_code == 404
    bad = auth_client.get("/experiments/%2E%2E%20x")
    assert bad.status_code == 422 and "name:" in text(bad)
    assert auth_client.get("/experiments/nothing/stop").status_code == 404


def _take_rates_per_day() -> None:
    """Impressions today, 3 days ago and 40 days ago, one of today's taken: the last 30 days per day."""
    import datetime as dt

    from airec.feedback import store
    from airec.feedback.stats import take_rate_per_day
    from airec.tables import Impression, utcnow

    now = utcnow()
    batch = [
        (f"r{n}", "user", f"u{n}", "v1", None, ["a", "b"], now - dt.timedelta(days=days))
        for n, days in enumerate([0, 0, 0, 0, 3, 40])
    ]
    store.write_impressions(batch)
    store.mark_taken(Impression.get(Impression.recommendation_id == "r0"), 2, now)
    days = take_rate_per_day(30)
    assert len(days) == 30 and days[-1]["date"] == now.date().isoformat()
    assert [(d["impressions"], d["takes"]) for d in days if d["impressions"]] == [(1, 0), (4, 1)]
    assert (
        days[-4]["date"] == (now - dt.timedelta(days=3)).date().isoformat() and days[-4]["impressions"] == 1
    )
    assert days[-1]["take_rate"] == 0.25 and 0 < days[-1]["interval"][0] < 0.25 < days[-1]["interval"][1]
    assert days[0]["take_rate"] is None and days[0]["interval"] is None


def test_take_rate_per_day_on_sqlite(db):
    _take_rates_per_day()


@pytest.mark.postgres
def test_take_rate_per_day_on_postgresql():
    from airec.db import init_db, migrate
    from tests.pg_helpers import fresh_database

    with fresh_database(prefix="airec_h12") as url:
        database = init_db(url)
        database.connect()
        try:
            migrate(database)
            _take_rates_per_day()
        finally:
            database.close()
