"""API keys and roles: the URL map is fully covered by the role table, keys work, are revocable at once,
and never appear in clear in the database or the logs."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pytest
from werkzeug.routing import IntegerConverter, PathConverter

from airec.auth import ENDPOINT_ROLES, PUBLIC, required_role, unmapped_endpoints

ROLES = ("ingest", "read", "admin")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def log_lines():
    """Everything the airec loggers emit during the test (they do not propagate to the root logger)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    logger = logging.getLogger("airec")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _operations(app):
    """(endpoint, method, url) for every route of the app, with sample path arguments."""
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        values = {}
        for name in rule.arguments:
            converter = rule._converters[name]
            if isinstance(converter, IntegerConverter):
                values[name] = 1
            else:
                values[name] = "swagger-ui.css" if isinstance(converter, PathConverter) else "x"
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, adapter.build(rule.endpoint, values, method=method)


def test_every_endpoint_of_the_url_map_has_an_access_decision(auth_app):
    missing = unmapped_endpoints(auth_app)
    assert missing == [], f"add these to airec.auth.ENDPOINT_ROLES: {missing}"


def test_role_table_names_only_real_endpoints(auth_app):
    """A renamed endpoint must not leave a stale (and silently unused) rule behind."""
    endpoints = {rule.endpoint for rule in auth_app.url_map.iter_rules()}
    assert sorted(set(ENDPOINT_ROLES) - endpoints) == []


def test_every_endpoint_answers_by_role(auth_app, keys):
    """Table-driven over the whole URL map: no key -> 401; wrong role -> 403; right role -> neither."""
    client = auth_app.test_client()
    settings = auth_app.config["AIREC"]
    checked = 0
    for endpoint, method, url in _operations(auth_app):
        role = required_role(endpoint, method, settings)
        assert role is not None, f"{method} {endpoint} has no access rule"
        if role == PUBLIC:
            answer = client.open(url, method=method)
            assert answer.status_code not in (401, 403), (method, url)
            continue
        answer = client.open(url, method=method, json={})
        assert answer.status_code == 401, (method, url, answer.status_code)
        assert answer.is_json and answer.headers["WWW-Authenticate"].startswith("Bearer")
        for key_role in ROLES:
            answer = client.open(url, method=method, json={}, headers=bearer(keys[key_role]))
            allowed = key_role == "admin" or key_role == role
            if allowed:
                assert answer.status_code not in (401, 403), (method, url, key_role, answer.json)
            else:
                assert answer.status_code == 403, (method, url, key_role, answer.status_code)
                assert answer.json["code"] == 403 and role in answer.json["message"]
        checked += 1
    assert checked >= 15


def test_an_endpoint_missing_from_the_table_is_refused(auth_app, keys, monkeypatch):
    monkeypatch.delitem(ENDPOINT_ROLES, "stats.Stats")
    answer = auth_app.test_client().get("/api/v1/stats", headers=bearer(keys["admin"]))
    assert answer.status_code == 403 and answer.is_json
    assert ("stats.Stats", "GET") in unmapped_endpoints(auth_app)


def test_missing_malformed_and_unknown_keys_are_401(auth_client, keys):
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {keys['admin']}"},
        {"Authorization": "Bearer airec_" + "A" * 43},
        {"Authorization": "Bearer " + keys["admin"][:-1]},
        {"X-API-Key": "nonsense"},
    ):
        answer = auth_client.get("/api/v1/stats", headers=headers)
        assert answer.status_code == 401, headers
        assert answer.json["code"] == 401 and answer.json["message"]
        assert 'realm="airec"' in answer.headers["WWW-Authenticate"]


def test_x_api_key_header_and_bearer_both_work(auth_client, keys):
    assert auth_client.get("/api/v1/stats", headers={"X-API-Key": keys["read"]}).status_code == 200
    assert auth_client.get("/api/v1/stats", headers=bearer(keys["read"])).status_code == 200
    lower = {"Authorization": "bearer " + keys["read"]}
    assert auth_client.get("/api/v1/stats", headers=lower).status_code == 200


def test_ingest_key_writes_and_cannot_read(auth_client, keys):
    answer = auth_client.post(
        "/api/v1/interactions", json={"user": "u", "items": ["a", "b"]}, headers=bearer(keys["ingest"])
    )
    assert answer.status_code == 201 and answer.json == {"records": 1, "interactions": 2}
    refused = auth_client.get("/api/v1/stats", headers=bearer(keys["ingest"]))
    assert refused.status_code == 403
    assert refused.json["message"] == "This needs a key with the 'read' role; this key has 'ingest'."
    compat = auth_client.post("/recordInteraction", json={"items": ["c"]}, headers=bearer(keys["read"]))
    assert compat.status_code == 403
    assert auth_client.get("/api/v1/stats", headers=bearer(keys["read"])).json["interactions"] == 2


def test_health_is_open_and_probes_follow_settings(settings_overrides, keys):
    from airec.app import create_app

    closed = create_app({**settings_overrides, "auth": True, "public_readyz": False, "public_docs": False})
    client = closed.test_client()
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 401
    assert client.get("/readyz", headers=bearer(keys["read"])).status_code == 200
    assert client.get("/openapi.json").status_code == 401
    assert client.get("/docs").status_code == 401
    assert client.get("/docs/static/swagger-ui.css").status_code == 401
    assert client.get("/openapi.json", headers=bearer(keys["read"])).status_code == 200


def test_docs_are_public_by_default_and_declare_the_security_schemes(auth_client):
    spec = auth_client.get("/openapi.json").json
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["type"] == "http" and schemes["bearerAuth"]["scheme"] == "bearer"
    assert schemes["apiKeyAuth"]["in"] == "header" and schemes["apiKeyAuth"]["name"] == "X-API-Key"
    assert spec["paths"]["/healthz"]["get"]["security"] == []
    recommend = spec["paths"]["/api/v1/recommendations"]["post"]
    assert {"bearerAuth": []} in recommend["security"] and "401" in recommend["responses"]
    assert auth_client.get("/docs").status_code == 200


def test_keys_api_create_list_revoke(auth_client, keys):
    admin = bearer(keys["admin"])
    created = auth_client.post("/api/v1/keys", json={"name": "scanner", "role": "ingest"}, headers=admin)
    assert created.status_code == 201
    body = created.json
    assert body["name"] == "scanner" and body["role"] == "ingest" and body["key"].startswith("airec_")
    assert len(body["key"]) >= 6 + 43 and body["prefix"] == body["key"][: len(body["prefix"])]
    new = bearer(body["key"])
    assert auth_client.post("/api/v1/interactions", json={"items": ["x"]}, headers=new).status_code == 201

    listed = auth_client.get("/api/v1/keys", headers=admin)
    assert listed.status_code == 200
    names = {row["name"]: row for row in listed.json["keys"]}
    assert set(names) == {"scanner", "test-admin", "test-ingest", "test-read"}
    assert names["scanner"]["last_used_at"] is not None
    assert body["key"] not in listed.get_data(as_text=True)
    assert all("key" not in row and "key_hash" not in row for row in listed.json["keys"])

    revoked = auth_client.delete("/api/v1/keys/scanner", headers=admin)
    assert revoked.status_code == 200 and revoked.json["name"] == "scanner"
    # Takes effect at once: the very next request with the key is refused.
    again = auth_client.post("/api/v1/interactions", json={"items": ["x"]}, headers=new)
    assert again.status_code == 401
    gone = auth_client.delete("/api/v1/keys/scanner", headers=admin)
    assert gone.status_code == 404 and gone.json["message"] == "No key named 'scanner'."


def test_revoking_an_admin_key_works_against_itself(auth_client, keys):
    admin = bearer(keys["admin"])
    assert auth_client.delete("/api/v1/keys/test-admin", headers=admin).status_code == 200
    assert auth_client.get("/api/v1/keys", headers=admin).status_code == 401


@pytest.mark.parametrize(
    "body, status",
    [
        ({"name": "dup", "role": "read"}, 201),
        ({"name": "test-read", "role": "read"}, 409),
        ({"name": "x", "role": "superuser"}, 422),
        ({"name": "", "role": "read"}, 422),
        ({"name": "has space", "role": "read"}, 422),
        ({"name": "a" * 65, "role": "read"}, 422),
        ({"name": "<script>", "role": "read"}, 422),
        ({"role": "read"}, 422),
        ({"name": "x", "role": "read", "extra": 1}, 422),
        ([], 422),
    ],
)
def test_keys_api_validates_input(auth_client, keys, body, status):
    answer = auth_client.post("/api/v1/keys", json=body, headers=bearer(keys["admin"]))
    assert answer.status_code == status, answer.json
    assert answer.is_json


def test_keys_api_is_admin_only(auth_client, keys):
    for role in ("ingest", "read"):
        headers = bearer(keys[role])
        listing = auth_client.get("/api/v1/keys", headers=headers)
        assert (
            listing.status_code == 403 and f"'admin' role; this key has '{role}'" in listing.json["message"]
        )
        create = auth_client.post("/api/v1/keys", json={"name": "n", "role": "admin"}, headers=headers)
        assert create.status_code == 403
        assert auth_client.delete("/api/v1/keys/test-admin", headers=headers).status_code == 403


def test_keys_are_never_stored_or_logged_in_clear(auth_client, keys, tmp_path: Path, log_lines):
    admin = bearer(keys["admin"])
    created = auth_client.post("/api/v1/keys", json={"name": "secret", "role": "read"}, headers=admin).json
    for _ in range(3):
        auth_client.get("/api/v1/stats", headers=bearer(created["key"]))
    auth_client.get("/api/v1/stats", headers=bearer(created["key"] + "x"))  # a near miss, logged as refused
    auth_client.delete("/api/v1/keys/secret", headers=admin)
    auth_client.get("/api/v1/stats", headers=bearer(created["key"]))

    assert any("secret" in line for line in log_lines), "creation and revocation are logged (by name)"
    stored = b"".join(path.read_bytes() for path in tmp_path.glob("t.db*"))
    for key in [created["key"], *keys.values()]:
        assert key.encode() not in stored
        assert key[len("airec_") :].encode() not in stored
        assert not any(key in line for line in log_lines)
    # What is stored is the hash, so lookups work.
    from airec.auth.service import hash_key

    assert hash_key(keys["admin"]).encode() in stored


def test_last_used_is_written_at_most_once_a_minute(auth_app, keys):
    from airec.auth import service
    from airec.db import database
    from airec.tables import ApiKey, utcnow

    client = auth_app.test_client()
    headers = bearer(keys["read"])

    def last_used() -> dt.datetime | None:
        with database.connection_context():
            return ApiKey.get(ApiKey.name == "test-read").last_used_at

    def set_last_used(value: dt.datetime) -> None:
        with database.connection_context():
            ApiKey.update(last_used_at=value).where(ApiKey.name == "test-read").execute()

    assert last_used() is None
    client.get("/api/v1/stats", headers=headers)
    assert last_used() is None  # written off the request path, by the background writer
    service.flush_last_used()
    first = last_used()
    assert first is not None
    recent = first - dt.timedelta(seconds=10)
    set_last_used(recent)
    client.get("/api/v1/stats", headers=headers)
    service.flush_last_used()
    assert last_used() == recent  # this process wrote it under a minute ago
    service._touched.clear()  # as if another worker process served the request
    client.get("/api/v1/stats", headers=headers)
    service.flush_last_used()
    assert last_used() == recent  # the SQL condition still holds it back
    set_last_used(utcnow() - dt.timedelta(minutes=2))
    service._touched.clear()
    client.get("/api/v1/stats", headers=headers)
    service.flush_last_used()
    assert last_used() > utcnow() - dt.timedelta(seconds=5)


def test_auth_off_logs_a_warning_and_opens_everything(settings_overrides, log_lines):
    from airec.app import create_app

    app = create_app({**settings_overrides, "auth": False})
    assert any("AUTHENTICATION IS OFF" in line for line in log_lines)
    assert app.test_client().get("/api/v1/keys").status_code == 200


def test_auth_env_switch(monkeypatch):
    from airec.config import Settings

    assert Settings.from_env().auth is True
    monkeypatch.setenv("AIREC_AUTH", "off")
    assert Settings.from_env().auth is False


def test_cli_keys_create_list_revoke(settings_overrides, monkeypatch, capsys, tmp_path):
    from airec.cli import main

    monkeypatch.setenv("AIREC_DATABASE_URL", settings_overrides["database_url"])
    monkeypatch.setenv("AIREC_MODELS_DIR", settings_overrides["models_dir"])
    assert main(["keys", "create", "--role", "admin", "--name", "ops"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("airec_") and len(key) == 49
    assert main(["keys", "create", "--role", "admin", "--name", "ops"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert "ops" in listing and "admin" in listing and key not in listing and key[:12] in listing

    from airec.app import create_app

    client = create_app({**settings_overrides, "auth": True}).test_client()
    assert client.get("/api/v1/keys", headers=bearer(key)).status_code == 200
    assert main(["keys", "revoke", "--name", "ops"]) == 0
    assert client.get("/api/v1/keys", headers=bearer(key)).status_code == 401
    assert main(["keys", "revoke", "--name", "ops"]) == 2
    assert key.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("t.db*"))


def test_a_flush_waits_for_the_writer_threads_write_in_flight(monkeypatch):
    """flush() promises every pending stamp is written when it returns: while the background writer
    is in the middle of writing the stamps it took, a flush waits for that write to end."""
    import threading

    from airec.auth import cache

    uses = cache.LastUsed(every=3600)
    writing, release, done = threading.Event(), threading.Event(), []

    def slow_write(db, stamps):
        writing.set()
        release.wait(5)
        done.append(stamps)
        return len(stamps)

    monkeypatch.setattr(cache, "write_last_used", slow_write)
    with uses._lock:  # a stamp pending, without starting the writer thread
        uses._pending[(1, 7)] = (object(), "stamp")
    writer = threading.Thread(target=uses.flush)  # as the writer thread's round would
    writer.start()
    assert writing.wait(5)
    second = threading.Thread(target=uses.flush)
    second.start()
    second.join(0.3)
    assert second.is_alive()  # still waiting for the first write
    release.set()
    writer.join(5)
    second.join(5)
    assert not second.is_alive() and done == [[(7, "stamp")]]
