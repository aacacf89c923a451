"""The console through the Flask test client, with API keys on: sign-in, roles, CSRF, every page and action.

The browser tests (tests/test_console_browser.py) cover the same pages in Chromium; these cover the
server's answers exactly (status codes, what changed in the database, what did not).
"""

from __future__ import annotations

import re
import time
from html import unescape

import pytest

from airec.db import database
from airec.tables import ApiKey, TrainingRun
from tests.synthetic import partners, planted

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
PROPOSED = re.compile(r'<span class="name">([^<]+)</span>')


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def csrf_token(client, path: str = "/login") -> str:
    page = client.get(path)
    match = CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path} ({page.status_code})"
    return match.group(1)


def sign_in(client, key: str, **extra) -> object:
    return client.post("/login", data={"api_key": key, "csrf_token": csrf_token(client), **extra})


def post_form(client, path: str, data: dict | None = None, token_from: str = "/"):
    return client.post(path, data={"csrf_token": csrf_token(client, token_from), **(data or {})})


@pytest.fixture
def seeded(auth_app, keys):
    """Planted data (8 groups of 6 items) and two itemknn models, through the JSON API."""
    client = auth_app.test_client()
    records, group_of = planted(units=160, seed=3)
    answer = client.post("/api/v1/interactions", json={"records": records}, headers=bearer(keys["ingest"]))
    assert answer.status_code == 201
    versions, admin = [], keys["admin"]
    for _ in range(2):
        started = client.post("/api/v1/training", json={"algorithm": "itemknn"}, headers=bearer(admin))
        assert started.status_code == 202, started.json
        run = wait_for_api_run(client, started.json["run"]["id"], keys["admin"])
        versions.append(run["model_version"])
    return {"group_of": group_of, "versions": versions, "records": records}


def wait_for_api_run(client, run_id: int, key: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/training/runs/{run_id}", headers=bearer(key)).json["run"]
        if run["status"] in ("succeeded", "failed"):
            assert run["status"] == "succeeded", run
            time.sleep(0.2)  # the thread releases its lease a moment after the row says succeeded
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def active_version(client, admin_key: str) -> str:
    return client.get("/api/v1/models", headers=bearer(admin_key)).json["active"]


# Sign-in and sessions


def test_pages_send_a_stranger_to_the_login_form(auth_client):
    answer = auth_client.get("/models?x=1")
    assert answer.status_code == 303 and answer.headers["Location"] == "/login?next=/models?x%3D1"
    login = auth_client.get("/login")
    assert login.status_code == 200
    html = login.get_data(as_text=True)
    assert 'name="api_key"' in html and 'type="password"' in html and CSRF.search(html)


def test_login_with_a_good_key_opens_a_session_that_holds_only_its_hash(auth_client, keys):
    answer = sign_in(auth_client, keys["admin"], next="/training")
    assert answer.status_code == 303 and answer.headers["Location"] == "/training"
    cookie = answer.headers["Set-Cookie"]
    assert cookie.startswith("airec_console=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http (loopback): a Secure cookie would never come back
    assert keys["admin"] not in cookie and keys["admin"][6:20] not in cookie
    overview = auth_client.get("/")
    assert overview.status_code == 200 and "test-admin" in overview.get_data(as_text=True)


def test_the_cookie_is_secure_over_https(auth_client, keys):
    token = csrf_token(auth_client)
    direct = auth_client.post(
        "/login",
        base_url="https://localhost",
        headers={"Referer": "https://localhost/"},
        data={"api_key": keys["read"], "csrf_token": token},
    )
    assert direct.status_code == 303 and "Secure" in direct.headers["Set-Cookie"]
    # Forwarded headers are believed only from trusted proxies (AIREC_TRUSTED_PROXIES, tests/test_proxies.py).
    forged = auth_client.post(
        "/logout", headers={"X-Forwarded-Proto": "https"}, data={"csrf_token": csrf_token(auth_client, "/")}
    )
    assert "Secure" not in forged.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "key, status, says",
    [
        ("airec_" + "A" * 43, 401, "not valid"),
        ("nonsense", 401, "not valid"),
        ("", 401, "not valid"),
    ],
)
def test_login_failures_say_why_and_open_no_session(auth_client, keys, key, status, says):
    answer = sign_in(auth_client, keys.get(key, key))
    assert answer.status_code == status and says in answer.get_data(as_text=True)
    assert auth_client.get("/").status_code == 303


def test_login_refuses_to_redirect_to_another_host(auth_client, keys):
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        answer = sign_in(auth_client, keys["read"], next=target)
        assert answer.status_code == 303 and answer.headers["Location"] == "/", target
        auth_client.post("/logout", data={"csrf_token": csrf_token(auth_client, "/")})


def test_logout_ends_the_session(auth_client, keys):
    sign_in(auth_client, keys["read"])
    assert auth_client.get("/").status_code == 200
    answer = post_form(auth_client, "/logout")
    assert answer.status_code == 303 and answer.headers["Location"] == "/login"
    assert auth_client.get("/").status_code == 303


def test_revoking_a_key_ends_its_console_session_on_the_next_request(auth_app, keys):
    reader, admin = auth_app.test_client(), auth_app.test_client()
    sign_in(reader, keys["read"])
    assert reader.get("/").status_code == 200
    assert admin.delete("/api/v1/keys/test-read", headers=bearer(keys["admin"])).status_code == 200
    answer = reader.get("/try")
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/login")
    assert "its key was revoked" in reader.get("/login").get_data(as_text=True)


def test_with_auth_off_the_console_opens_without_login(client):
    assert client.get("/login").status_code == 303
    html = client.get("/").get_data(as_text=True)
    assert "Authentication is off" in html and "Sign out" not in html
    for label in ("Models", "Training", "Try it", "Access"):
        assert f">{label}</a>" in html
    assert client.get("/keys").status_code == 200


# CSRF


def test_forms_without_a_csrf_token_are_refused(auth_client, keys, seeded):
    assert auth_client.post("/login", data={"api_key": keys["admin"]}).status_code == 400
    sign_in(auth_client, keys["admin"])
    before = active_version(auth_client, keys["admin"])
    older = seeded["versions"][0]
    for path, data in (
        (f"/models/{older}/activate", {}),
        ("/training", {"algorithm": "itemknn"}),
        ("/keys", {"name": "sneaky", "role": "admin"}),
        ("/logout", {}),
        (f"/models/{older}/activate", {"csrf_token": "forged"}),
    ):
        answer = auth_client.post(path, data=data)
        assert answer.status_code == 400, path
        assert "security token" in answer.get_data(as_text=True)
    assert active_version(auth_client, keys["admin"]) == before
    with database.connection_context():
        assert TrainingRun.select().count() == 2
        assert not ApiKey.select().where(ApiKey.name == "sneaky").exists()
    assert auth_client.get("/").status_code == 200  # still signed in: the refused logout did nothing


def test_the_json_api_needs_no_csrf_token_and_sets_no_cookie(auth_client, keys):
    answer = auth_client.post("/api/v1/interactions", json={"items": ["a"]}, headers=bearer(keys["ingest"]))
    assert answer.status_code == 201 and "Set-Cookie" not in answer.headers


# Roles: the API's, page by page


def test_a_read_key_sees_no_admin_page_or_button_and_forged_admin_posts_get_403(auth_client, keys, seeded):
    sign_in(auth_client, keys["read"])
    overview = auth_client.get("/").get_data(as_text=True)
    assert ">Overview</a>" in overview and ">Try it</a>" in overview
    for href in ('href="/models', 'href="/training', 'href="/keys'):
        assert href not in overview, href
    for label in ("Train now", "Activate", "Roll back", "Archive", "Revoke", "Create key"):
        assert label not in overview, label
    assert auth_client.get("/try").status_code == 200
    for path in ("/models", f"/models/{seeded['versions'][0]}", "/training", "/keys"):
        answer = auth_client.get(path)
        assert answer.status_code == 403 and "'admin' role" in unescape(answer.get_data(as_text=True)), path
    before = active_version(auth_client, keys["admin"])
    forged = (
        (f"/models/{seeded['versions'][0]}/activate", {}),
        (f"/models/{seeded['versions'][0]}/archive", {}),
        ("/training", {"algorithm": "itemknn"}),
        ("/keys", {"name": "escalate", "role": "admin"}),
        ("/keys/test-admin/revoke", {}),
    )
    for path, data in forged:
        answer = post_form(auth_client, path, data)  # a valid token from the reader's own page
        assert answer.status_code == 403, path
    assert active_version(auth_client, keys["admin"]) == before
    with database.connection_context():
        assert TrainingRun.select().count() == 2
        assert {row.name for row in ApiKey.select()} == {"test-admin", "test-read", "test-ingest"}


def test_every_console_endpoint_mirrors_an_api_operation(auth_app):
    from airec.console.access import MIRRORS, OPEN, operations

    methods: dict[str, set[str]] = {}
    for rule in auth_app.url_map.iter_rules():
        methods.setdefault(rule.endpoint, set()).update(rule.methods or ())
    assert {name for name in methods if name.startswith("console.")} == set(MIRRORS) | OPEN
    mirrored = {operation for name in MIRRORS for operation in operations(name)}
    assert all(method in methods.get(endpoint, ()) for endpoint, method in mirrored), mirrored


# Pages and actions, as an admin


def test_overview_counts_match_the_database_and_show_the_active_model(auth_client, keys, seeded):
    from airec.tables import Interaction, Item, Record, User

    sign_in(auth_client, keys["admin"])
    html = auth_client.get("/").get_data(as_text=True)
    with database.connection_context():
        expected = {
            "users": User.select().count(),
            "items": Item.select().count(),
            "records": Record.select().count(),
            "interactions": Interaction.select().count(),
        }
    shown = {name: int(n.replace(",", "")) for name, n in re.findall(r'data-count="(\w+)">([\d,]+)<', html)}
    assert shown == expected and expected["interactions"] > 0
    assert seeded["versions"][1] in html and "ndcg@10" in html and '<svg class="chart"' in html
    assert "Next scheduled training</dt>\n    <dd>none: AIREC_SCHEDULER is false" in html
    assert html.count('<rect class="bar"') == 30


def test_models_page_lists_versions_and_rolls_back_after_confirmation(auth_client, keys, seeded):
    older, newer = seeded["versions"]
    sign_in(auth_client, keys["admin"])
    page = auth_client.get("/models").get_data(as_text=True)
    assert older in page and newer in page and "polyline" in page
    assert f'href="/models/{older}/activate">Roll back' in page
    assert f'href="/models/{newer}/activate"' not in page  # the active one has no action
    confirm = auth_client.get(f"/models/{older}/activate")
    assert confirm.status_code == 200 and "Roll back to" in confirm.get_data(as_text=True)
    assert active_version(auth_client, keys["admin"]) == newer  # looking at the confirmation changes nothing
    done = post_form(auth_client, f"/models/{older}/activate", token_from=f"/models/{older}/activate")
    assert done.status_code == 303 and done.headers["Location"] == "/models"
    assert active_version(auth_client, keys["admin"]) == older
    page = auth_client.get("/models").get_data(as_text=True)
    assert f"Model {older} is active now (was {newer}) and pinned" in page
    assert f"Model <code>{older}</code> is pinned" in page and 'action="/models/unpin"' in page
    assert auth_client.get("/api/v1/models", headers=bearer(keys["admin"])).json["pinned"] == older


def test_unpin_from_the_console_releases_the_pin_and_a_read_key_cannot(auth_app, auth_client, keys, seeded):
    older, _ = seeded["versions"]
    sign_in(auth_client, keys["admin"])
    post_form(auth_client, f"/models/{older}/activate", token_from=f"/models/{older}/activate")
    reader = auth_app.test_client()
    sign_in(reader, keys["read"])
    assert post_form(reader, "/models/unpin").status_code == 403
    assert auth_client.get("/api/v1/models", headers=bearer(keys["admin"])).json["pinned"] == older
    assert post_form(auth_client, "/models/unpin", token_from="/models").status_code == 303
    assert auth_client.get("/api/v1/models", headers=bearer(keys["admin"])).json["pinned"] is None
    page = auth_client.get("/models").get_data(as_text=True)
    assert f"Model {older} is no longer pinned" in page and 'action="/models/unpin"' not in page


def test_model_page_shows_the_api_manifest_and_archive_works(auth_client, keys, seeded):
    older, newer = seeded["versions"]
    sign_in(auth_client, keys["admin"])
    page = auth_client.get(f"/models/{older}").get_data(as_text=True)
    assert "Manifest" in page and "&#34;evaluation&#34;" in page and "Archive this version" in page
    missing = auth_client.get("/models/no-such-version")
    assert missing.status_code == 404 and "No model version &#39;no-such-version&#39;" in missing.get_data(
        as_text=True
    )
    assert post_form(auth_client, f"/models/{newer}/archive").status_code == 409  # the active one
    assert post_form(auth_client, f"/models/{older}/archive").status_code == 303
    listed = auth_client.get(f"/api/v1/models/{older}", headers=bearer(keys["admin"])).json
    assert listed["status"] == "archived" and not listed["on_disk"]
    assert post_form(auth_client, f"/models/{older}/activate").status_code == 409


def test_train_now_starts_a_run_and_its_progress_reports_the_finish(auth_client, keys, seeded):
    sign_in(auth_client, keys["admin"])
    answer = post_form(auth_client, "/training", {"algorithm": "autoencoder"}, token_from="/training")
    assert answer.status_code == 303 and answer.headers["Location"] == "/training?run=3"
    page = auth_client.get("/training?run=3").get_data(as_text=True)
    assert 'data-progress-url="/training/runs/3/progress"' in page and "Run 3" in page
    deadline = time.monotonic() + 90
    while True:
        progress = auth_client.get("/training/runs/3/progress").json
        if progress["finished"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert progress["status"] == "succeeded" and 'id="loss-chart"' in progress["html"]
    assert "<polyline" in progress["html"] and "validation ndcg" in progress["html"]
    with database.connection_context():
        assert TrainingRun.get_by_id(3).trigger == "console"
    time.sleep(0.3)  # let the run's thread release its lease


def test_train_now_refuses_a_bad_algorithm_and_a_second_run(auth_client, keys, seeded):
    sign_in(auth_client, keys["admin"])
    bad = post_form(auth_client, "/training", {"algorithm": "magic"})
    assert bad.status_code == 422 and "algorithm" in bad.get_data(as_text=True)
    for path in ("/training?run=999", "/training/runs/999/progress"):
        missing = auth_client.get(path)
        assert missing.status_code == 404 and "No training run with id 999." in missing.get_data(as_text=True)
    first = post_form(auth_client, "/training", {"algorithm": "autoencoder"})
    second = post_form(auth_client, "/training", {"algorithm": "itemknn"})
    assert first.status_code == 303  # the run holds the training lease from here until it finishes
    assert second.status_code == 409 and "already in progress" in second.get_data(as_text=True)
    assert 'href="/training?run=3"' in second.get_data(as_text=True)
    deadline = time.monotonic() + 90
    while not auth_client.get("/training/runs/3/progress").json["finished"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(0.3)


def test_try_it_proposes_the_planted_group_with_explanations(auth_client, keys, seeded):
    sign_in(auth_client, keys["read"])
    html = auth_client.get("/try?items=g2-i0&items=g2-i1&k=3").get_data(as_text=True)
    proposed = PROPOSED.findall(html)
    assert len(proposed) == 3 and set(proposed) <= partners("g2-i0", seeded["group_of"])
    assert "because of g2-i" in html and 'class="scorebar"' in html
    user = seeded["records"][5]["user"]
    page = auth_client.get(f"/try?user={user}&k=2").get_data(as_text=True)
    assert f"History of {user}" in page and page.count("<li>g") >= 3
    similar = auth_client.get("/try?item=g4-i0&k=2").get_data(as_text=True)
    assert set(PROPOSED.findall(similar)) <= partners("g4-i0", seeded["group_of"])


@pytest.mark.parametrize(
    "query, says",
    [
        ("user=nobody", "No user"),
        ("item=unknown-item", "does not know"),
        ("items=g1-i0&k=x", "whole number"),
        ("items=g1-i0&k=0", "k:"),
        ("item=g1-i0&k=5000", "k:"),
    ],
)
def test_try_it_bad_input_says_what_is_wrong(auth_client, keys, seeded, query, says):
    sign_in(auth_client, keys["read"])
    answer = auth_client.get(f"/try?{query}")
    assert answer.status_code == 200 and says in answer.get_data(as_text=True)


def test_autocomplete_suggests_catalogue_names_prefix_first(auth_client, keys, seeded):
    sign_in(auth_client, keys["read"])
    names = auth_client.get("/try/items?q=G3-").json["items"]
    assert names and all(name.startswith("g3-") for name in names)
    assert auth_client.get("/try/items?q=-i5").json["items"][0].endswith("-i5")
    assert auth_client.get("/try/items?q=zzz").json == {"items": []}


def test_keys_page_creates_a_key_shown_once_and_revokes(auth_client, keys):
    sign_in(auth_client, keys["admin"])
    created = post_form(auth_client, "/keys", {"name": "scanner", "role": "ingest"}, token_from="/keys")
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    key = re.search(r'value="(airec_[A-Za-z0-9_-]{43})"', created.get_data(as_text=True)).group(1)
    ingest = {"json": {"items": ["x"]}, "headers": bearer(key)}
    assert auth_client.post("/api/v1/interactions", **ingest).status_code == 201
    listing = auth_client.get("/keys").get_data(as_text=True)
    assert "scanner" in listing and key not in listing
    refused = (
        ({"name": "scanner", "role": "read"}, 409),
        ({"name": "bad name", "role": "read"}, 422),
        ({"name": "x", "role": "root"}, 422),
    )
    for data, status in refused:
        answer = post_form(auth_client, "/keys", data)
        assert answer.status_code == status and 'class="error"' in answer.get_data(as_text=True)
    assert "Revoke the key" in auth_client.get("/keys/scanner/revoke").get_data(as_text=True)
    assert post_form(auth_client, "/keys/scanner/revoke").status_code == 303
    assert auth_client.post("/api/v1/interactions", **ingest).status_code == 401
    assert auth_client.get("/keys/scanner/revoke").status_code == 404


def test_revoking_your_own_key_signs_you_out(auth_client, keys):
    sign_in(auth_client, keys["admin"])
    confirmation = auth_client.get("/keys/test-admin/revoke").get_data(as_text=True)
    assert "This is the key you signed in with" in confirmation
    assert post_form(auth_client, "/keys/test-admin/revoke").status_code == 303
    assert auth_client.get("/keys").status_code == 303


def test_pages_carry_a_strict_content_security_policy(auth_client, keys):
    sign_in(auth_client, keys["read"])
    answer = auth_client.get("/")
    policy = answer.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["X-Frame-Options"] == "DENY"
    assert auth_client.get("/console/static/console.css").status_code == 200


def test_progress_of_a_run_in_flight_shows_its_share_and_curves_so_far(client, app):
    from airec.training.service import reap_stale_runs

    history = [
        {"epoch": e, "max_epochs": 10, "train_loss": 9.0 - e, "val_loss": 9.5 - e, "val_ndcg": 0.1 * e}
        for e in (1, 2, 3)
    ]
    with database.connection_context():
        reap_stale_runs(app.config["AIREC"])
        run = TrainingRun.create(
            algorithm="autoencoder", status="running", epoch=3, max_epochs=10, history=history, owner=None
        )
    progress = client.get(f"/training/runs/{run.id}/progress").json
    assert progress["status"] == "running" and progress["finished"] is False
    assert 'value="30"' in progress["html"] and "epoch 3 of at most 10" in progress["html"]
    assert progress["html"].count("<polyline") == 3 and "epoch 3" in progress["html"]
    page = client.get(f"/training?run={run.id}").get_data(as_text=True)
    assert 'data-finished="false"' in page and f"Run {run.id}: running" in page
