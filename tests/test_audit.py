"""The audit log (issue 21): every non-ingest change through the API, the console or the CLI appends one
row (time, actor, action, target, address); GET /api/v1/audit reads it (admin, paged, filtered); no route
changes it. Real app with API keys on, real SQLite."""

from __future__ import annotations

import datetime as dt

import pytest

from airec.db import database
from airec.tables import AuditEntry, utcnow
from tests.synthetic import planted
from tests.test_console import bearer, post_form, sign_in, wait_for_api_run

AUDIT = "/api/v1/audit"


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "retrain_after_delete": False, "model_poll_seconds": 0}


def entries(client, key: str, **query) -> list[dict]:
    answer = client.get(AUDIT, query_string=query, headers=bearer(key))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["entries"]


def test_api_changes_are_recorded_with_key_name_action_target_and_address(auth_client, keys):
    admin, h = keys["admin"], bearer(keys["admin"])
    ingest = auth_client.post(
        "/api/v1/interactions", json={"records": planted(units=60, seed=2)[0]}, headers=bearer(keys["ingest"])
    )
    assert ingest.status_code == 201
    assert entries(auth_client, admin) == []  # data ingest is not audited
    assert (
        auth_client.post("/api/v1/keys", json={"name": "shop", "role": "ingest"}, headers=h).status_code
        == 201
    )
    assert auth_client.delete("/api/v1/keys/shop", headers=h).status_code == 200
    started = auth_client.post("/api/v1/training", json={"algorithm": "popularity"}, headers=h)
    assert started.status_code == 202
    run_id = started.get_json()["run"]["id"]
    version = wait_for_api_run(auth_client, run_id, admin)["model_version"]
    assert auth_client.post(f"/api/v1/models/{version}/activate", headers=h).status_code == 200
    assert auth_client.post("/api/v1/models/unpin", headers=h).status_code == 200
    assert auth_client.patch("/api/v1/items/g0-i0", json={"hidden": True}, headers=h).status_code == 200
    assert auth_client.delete("/api/v1/users/u3", headers=h).status_code == 200
    assert auth_client.delete("/api/v1/items/g0-i1", headers=h).status_code == 200

    rows = entries(auth_client, admin)
    assert [(r["action"], r["target"]) for r in reversed(rows)] == [
        ("key.created", "shop"),
        ("key.revoked", "shop"),
        ("training.started", f"run {run_id}"),
        ("model.activated", version),
        ("model.unpinned", version),
        ("catalogue.changed", "g0-i0"),
        ("user.deleted", "sha256:" + __import__("hashlib").sha256(b"u3").hexdigest()),
        ("item.deleted", "g0-i1"),
    ]
    assert {r["actor"] for r in rows} == {"test-admin"}
    assert [(r["action"], r["address"]) for r in rows if r["address"] != "127.0.0.1"] == []
    assert all("u3" not in str(r) for r in rows)  # the deleted user's name is nowhere in the log
    assert rows[0]["details"]["interactions"] > 0


def test_the_log_is_filtered_paged_admin_only_and_append_only(auth_client, keys):
    h = bearer(keys["admin"])
    for n in range(5):
        assert (
            auth_client.post("/api/v1/keys", json={"name": f"k{n}", "role": "read"}, headers=h).status_code
            == 201
        )
    assert auth_client.delete("/api/v1/keys/k0", headers=h).status_code == 200
    assert [r["target"] for r in entries(auth_client, keys["admin"], action="key.revoked")] == ["k0"]
    assert entries(auth_client, keys["admin"], actor="someone-else") == []
    first = auth_client.get(AUDIT, query_string={"limit": 4}, headers=h).get_json()
    assert len(first["entries"]) == 4 and first["next_before"]
    rest = entries(auth_client, keys["admin"], before=first["next_before"])
    assert [r["target"] for r in rest] == ["k1", "k0"]
    future = (utcnow() + dt.timedelta(hours=1)).isoformat(timespec="seconds")
    assert entries(auth_client, keys["admin"], since=future) == []
    assert len(entries(auth_client, keys["admin"], until=future)) == 6
    for query, field in (
        ({"action": "nope"}, "action"),
        ({"limit": 0}, "limit"),
        ({"since": "yesterday"}, "since"),
    ):
        bad = auth_client.get(AUDIT, query_string=query, headers=h)
        assert bad.status_code == 422 and field in str(bad.get_json()), bad.get_json()
    assert auth_client.get(AUDIT, headers=bearer(keys["read"])).status_code == 403
    assert auth_client.get(AUDIT).status_code == 401
    for method in ("post", "put", "patch", "delete"):
        assert getattr(auth_client, method)(AUDIT, headers=h).status_code == 405
    assert len(entries(auth_client, keys["admin"])) == 6


def test_cli_changes_are_recorded_as_cli(app, monkeypatch, capsys):
    from airec import cli

    monkeypatch.setenv("AIREC_DATABASE_URL", app.config["AIREC"].database_url)
    monkeypatch.setenv("AIREC_MODELS_DIR", app.config["AIREC"].models_dir)
    assert cli.main(["keys", "create", "--name", "ops", "--role", "admin"]) == 0
    assert cli.main(["keys", "revoke", "--name", "ops"]) == 0
    assert cli.main(["models", "unpin"]) == 0
    with database.connection_context():
        rows = [(r.actor, r.action, r.target, r.address) for r in AuditEntry.select().order_by(AuditEntry.id)]
    assert rows == [
        ("cli", "key.created", "ops", None),
        ("cli", "key.revoked", "ops", None),
        ("cli", "model.unpinned", None, None),
    ]


def test_console_changes_are_recorded_with_the_signed_in_key(auth_client, keys):
    sign_in(auth_client, keys["admin"])
    assert (
        post_form(auth_client, "/keys", {"name": "from-console", "role": "read"}, "/keys").status_code == 201
    )
    assert post_form(auth_client, "/keys/from-console/revoke", token_from="/keys").status_code == 303
    with database.connection_context():
        rows = [(r.actor, r.action, r.target) for r in AuditEntry.select().order_by(AuditEntry.id)]
    assert rows == [
        ("test-admin", "key.created", "from-console"),
        ("test-admin", "key.revoked", "from-console"),
    ]


def test_rows_older_than_the_audit_days_are_pruned(app, client):
    from airec.audit import service

    assert client.delete("/api/v1/items/nothing").status_code == 404  # refused changes are not recorded
    with database.connection_context():
        service.record(service.Action.KEY_CREATED, "old", actor="cli")
        assert service.prune(400) == 0
        assert service.prune(400, now=utcnow() + dt.timedelta(days=401)) == 1
        assert AuditEntry.select().count() == 0
