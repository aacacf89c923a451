"""The console's Items page and /try's catalogue filters, through the Flask client with keys on."""

from __future__ import annotations

import re

import pytest

from airec.console import access
from tests.test_console import bearer, csrf_token, sign_in

ROWS = re.compile(r'<tr data-item="([^"]+)">')
NAV = re.compile(r'<nav aria-label="Main">(.*?)</nav>', re.S)


def seed(client, keys) -> None:
    body = {"records": [{"user": "u1", "items": ["boot", "hat", "a/b"]}, {"user": "u2", "items": ["boot"]}]}
    assert client.post("/api/v1/interactions", json=body, headers=bearer(keys["ingest"])).status_code == 201
    catalogue = {
        "items": [
            {"item": "boot", "categories": ["shoes/hiking"], "labels": ["sale"]},
            {"item": "hat", "categories": ["hats"], "hidden": True},
            {"item": "new-boot", "categories": ["shoes"]},
        ]
    }
    assert client.post("/api/v1/items", json=catalogue, headers=bearer(keys["ingest"])).status_code == 200


def listed(client, query: str = "") -> list[str]:
    page = client.get(f"/items{query}")
    assert page.status_code == 200
    return ROWS.findall(page.get_data(as_text=True))


def test_the_items_page_searches_and_filters(auth_app, keys):
    client = auth_app.test_client()
    seed(client, keys)
    sign_in(client, keys["read"])
    assert listed(client) == ["boot", "a/b", "hat", "new-boot"]
    assert listed(client, "?q=boot") == ["boot", "new-boot"]
    assert listed(client, "?category=shoes") == ["boot", "new-boot"]
    assert listed(client, "?label=sale") == ["boot"]
    assert listed(client, "?hidden=yes") == ["hat"]
    detail = client.get("/items/show?item=a/b").get_data(as_text=True)
    assert "Recommendable now." in detail and 'id="item-count">1<' in detail
    assert client.get("/items/show?item=ghost").status_code == 404


def test_a_reader_sees_no_button_and_may_not_hide(auth_app, keys):
    client = auth_app.test_client()
    seed(client, keys)
    sign_in(client, keys["read"])
    assert "toggle-hidden" not in client.get("/items/show?item=boot").get_data(as_text=True)
    token = csrf_token(client, "/items")
    refused = client.post("/items/visibility", data={"csrf_token": token, "item": "boot", "hidden": "true"})
    assert refused.status_code == 403
    assert client.get("/api/v1/items/boot", headers=bearer(keys["read"])).json["hidden"] is False


def test_an_admin_hides_and_shows_in_one_click_with_csrf(auth_app, keys):
    client = auth_app.test_client()
    seed(client, keys)
    sign_in(client, keys["admin"])
    assert (
        client.post("/items/visibility", data={"item": "boot", "hidden": "true"}).status_code == 400
    )  # no CSRF
    token = csrf_token(client, "/items/show?item=boot")
    done = client.post("/items/visibility", data={"csrf_token": token, "item": "boot", "hidden": "true"})
    assert done.status_code == 302 and "/items/show?item=boot" in done.headers["Location"]
    assert client.get("/api/v1/items/boot", headers=bearer(keys["read"])).json["hidden_reason"] == "hidden"
    token = csrf_token(client, "/items/show?item=boot")
    client.post("/items/visibility", data={"csrf_token": token, "item": "boot", "hidden": "false"})
    assert client.get("/api/v1/items/boot", headers=bearer(keys["read"])).json["visible"] is True


def test_try_filters_the_proposals_by_category_and_label(auth_app, keys):
    client = auth_app.test_client()
    seed(client, keys)
    sign_in(client, keys["read"])
    page = client.get("/try?items=a/b&k=5&category=shoes").get_data(as_text=True)
    assert re.findall(r'<span class="name">([^<]+)</span>', page) == ["boot"]
    assert 'id="filtered"' in page and 'value="shoes"' in page
    page = client.get("/try?items=a/b&k=5&label=nothing").get_data(as_text=True)
    assert re.findall(r'<span class="name">([^<]+)</span>', page) == []


def test_an_ingest_key_opens_items_and_hides_in_one_click_with_csrf(auth_app, keys):
    client = auth_app.test_client()
    seed(client, keys)
    signed_in = sign_in(client, keys["ingest"])
    assert signed_in.status_code == 303 and signed_in.headers["Location"] == "/items"
    assert client.get("/").headers["Location"] == "/items"  # its console is the Items page
    page = client.get("/items").get_data(as_text=True)
    assert re.findall(r'href="([^"]+)"', NAV.search(page).group(1)) == ["/items"]
    # only what hiding needs: names and filters, no interaction counts and no popularity order
    assert listed(client) == ["a/b", "boot", "hat", "new-boot"]
    assert "Interactions" not in page and listed(client, "?hidden=yes") == ["hat"]
    detail = client.get("/items/show?item=boot").get_data(as_text=True)
    assert "toggle-hidden" in detail and "item-count" not in detail
    for other in ("/try", "/models", "/training", "/keys", "/audit", "/experiments"):
        assert client.get(other).status_code == 403, other
    assert client.post("/items/visibility", data={"item": "boot", "hidden": "true"}).status_code == 400
    token = csrf_token(client, "/items/show?item=boot")
    done = client.post("/items/visibility", data={"csrf_token": token, "item": "boot", "hidden": "true"})
    assert done.status_code == 302 and "/items/show?item=boot" in done.headers["Location"]
    assert client.get("/api/v1/items/boot", headers=bearer(keys["read"])).json["hidden_reason"] == "hidden"
    token = csrf_token(client, "/items/show?item=boot")
    shown = client.post("/items/visibility", data={"csrf_token": token, "item": "boot", "hidden": "false"})
    assert shown.status_code == 302
    assert client.get("/api/v1/items/boot", headers=bearer(keys["read"])).json["visible"] is True
    bad = client.post("/items/visibility", data={"csrf_token": token, "item": "bad\nname", "hidden": "true"})
    assert bad.status_code == 422


def test_readers_still_see_counts_and_popularity_order(auth_app, keys):
    client = auth_app.test_client()
    seed(client, keys)
    sign_in(client, keys["read"])
    page = client.get("/items").get_data(as_text=True)
    assert "Interactions" in page and listed(client) == ["boot", "a/b", "hat", "new-boot"]
    nav = re.findall(r'href="([^"]+)"', NAV.search(page).group(1))
    assert "/items" in nav and "/" in nav


def test_a_key_that_opens_no_page_is_refused(auth_app, keys, monkeypatch):
    """Fail closed: were the catalogue pages not an ingest key's, it could not sign in."""
    mirrors = {
        **access.MIRRORS,
        "console.items": ("stats.Items", "GET"),
        "console.item": ("stats.Items", "GET"),
    }
    monkeypatch.setattr(access, "MIRRORS", mirrors)
    client = auth_app.test_client()
    refused = sign_in(client, keys["ingest"])
    assert refused.status_code == 403 and "opens no console page" in refused.get_data(as_text=True)
    assert client.get("/items").status_code == 303  # to the login form: no session


@pytest.mark.parametrize("role", ["read", "ingest", "admin"])
def test_every_role_may_open_an_item_and_only_writers_see_the_button(auth_app, keys, role):
    client = auth_app.test_client()
    seed(client, keys)
    sign_in(client, keys[role])
    detail = client.get("/items/show?item=a/b")
    assert detail.status_code == 200
    assert ("toggle-hidden" in detail.get_data(as_text=True)) is (role != "read")
