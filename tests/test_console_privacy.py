"""The console's delete-user and Audit pages through the Flask test client, keys on: the confirmation
names the count, the POST needs CSRF and the admin role, and nothing changes before the confirmation."""

from __future__ import annotations

from html import unescape

import pytest

from tests.test_console import bearer, csrf_token, post_form, sign_in


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "retrain_after_delete": False}


@pytest.fixture
def stored(auth_client, keys):
    records = [{"user": "a/b", "items": [f"i{n}" for n in range(7)]}, {"user": "stays", "items": ["i1"]}]
    answer = auth_client.post(
        "/api/v1/interactions", json={"records": records}, headers=bearer(keys["ingest"])
    )
    assert answer.status_code == 201


def stats(client, keys) -> dict:
    return client.get("/api/v1/stats", headers=bearer(keys["read"])).get_json()


def test_the_confirmation_names_the_count_and_only_the_post_deletes(auth_client, keys, stored):
    sign_in(auth_client, keys["admin"])
    form = auth_client.get("/users/delete")
    assert form.status_code == 200 and 'name="user"' in form.get_data(as_text=True)
    page = auth_client.get("/users/delete", query_string={"user": "a/b"})
    text = unescape(page.get_data(as_text=True))
    assert page.status_code == 200 and "7 interactions</strong> will be deleted" in text
    assert stats(auth_client, keys)["interactions"] == 8  # looking changes nothing
    no_csrf = auth_client.post("/users/delete", data={"user": "a/b"})
    assert no_csrf.status_code == 400 and stats(auth_client, keys)["interactions"] == 8
    done = post_form(auth_client, "/users/delete", {"user": "a/b"}, token_from="/users/delete")
    assert done.status_code == 303
    assert "7 interactions removed" in unescape(auth_client.get("/users/delete").get_data(as_text=True))
    assert stats(auth_client, keys) == {"users": 1, "items": 1, "records": 1, "interactions": 1}
    audit = unescape(auth_client.get("/audit").get_data(as_text=True))
    assert "user.deleted" in audit and "a/b" not in audit and "test-admin" in audit


def test_unknown_or_bad_names_and_read_keys_are_refused(auth_client, keys, stored):
    sign_in(auth_client, keys["admin"])
    assert auth_client.get("/users/delete", query_string={"user": "nobody"}).status_code == 404
    assert auth_client.get("/users/delete", query_string={"user": "x\x01"}).status_code == 422
    token = csrf_token(auth_client, "/users/delete")
    assert auth_client.post("/users/delete", data={"user": "nobody", "csrf_token": token}).status_code == 404
    reader = auth_client.application.test_client()
    sign_in(reader, keys["read"])
    assert reader.get("/users/delete").status_code == 403
    assert reader.get("/audit").status_code == 403
    forged = reader.post("/users/delete", data={"user": "a/b", "csrf_token": csrf_token(reader, "/")})
    assert forged.status_code == 403
    assert stats(auth_client, keys)["interactions"] == 8


def test_the_audit_page_filters_and_says_when_a_filter_is_wrong(auth_client, keys):
    h = bearer(keys["admin"])
    for name in ("one", "two"):
        assert (
            auth_client.post("/api/v1/keys", json={"name": name, "role": "read"}, headers=h).status_code
            == 201
        )
    assert auth_client.delete("/api/v1/keys/one", headers=h).status_code == 200
    sign_in(auth_client, keys["admin"])
    page = auth_client.get("/audit", query_string={"action": "key.revoked"}).get_data(as_text=True)
    assert page.count('data-action="key.revoked"') == 1 and 'data-action="key.created"' not in page
    bad = auth_client.get("/audit", query_string={"action": "nope"})
    assert bad.status_code == 422 and "action" in bad.get_data(as_text=True)
