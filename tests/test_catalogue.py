"""The item catalogue's routes through the real app: storage, visibility, bulk upserts, bad input, roles,
and the item list's filters, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.pg_helpers import fresh_database

SHOES = {"categories": ["shoes", "shoes/running"], "labels": ["brand:acme", "sale"]}


def store(client, *records: list[str]) -> None:
    body = {"records": [{"user": f"u{i}", "items": items} for i, items in enumerate(records)]}
    assert client.post("/api/v1/interactions", json=body).status_code == 201


def test_an_item_named_with_a_slash_is_described_and_read_back(client):
    store(client, ["a/b", "c"])
    answer = client.put(
        "/api/v1/items/a/b",
        json={**SHOES, "properties": {"title": "Trail"}, "available_from": "2020-01-01T01:00:00+01:00"},
    )
    assert answer.status_code == 200, answer.json
    got = client.get("/api/v1/items/a/b").json
    assert got["item"] == "a/b" and got["count"] == 1 and got["described"] is True
    assert got["categories"] == SHOES["categories"] and got["properties"] == {"title": "Trail"}
    assert got["available_from"] == "2020-01-01T00:00:00+00:00"
    assert got["visible"] is True and got["hidden_reason"] is None


def test_patch_changes_only_what_it_sends_and_put_replaces_everything(client):
    store(client, ["boot"])
    client.put("/api/v1/items/boot", json=SHOES)
    hidden = client.patch("/api/v1/items/boot", json={"hidden": True}).json
    assert hidden["hidden"] is True and hidden["labels"] == SHOES["labels"]
    assert hidden["visible"] is False and hidden["hidden_reason"] == "hidden"
    replaced = client.put("/api/v1/items/boot", json={"labels": ["x"]}).json
    assert replaced == {**replaced, "categories": [], "labels": ["x"], "hidden": False, "visible": True}


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        ({"available_from": "2999-01-01T00:00:00Z"}, "not_yet_available"),
        ({"available_until": "2000-01-01T00:00:00Z"}, "no_longer_available"),
        ({"available_from": "2000-01-01T00:00:00Z", "available_until": "2999-01-01T00:00:00Z"}, None),
    ],
)
def test_the_availability_window_decides_visibility(client, window, reason):
    answer = client.put("/api/v1/items/new-product", json=window).json
    assert answer["hidden_reason"] == reason and answer["visible"] is (reason is None)


def test_a_described_item_without_interactions_is_listed_with_count_0_but_not_counted(client):
    store(client, ["a", "b"], ["a"])
    client.put("/api/v1/items/new-product", json={"categories": ["shoes"]})
    assert client.get("/api/v1/items/new-product").json["count"] == 0
    listed = client.get("/api/v1/items")
    assert listed.json == [
        {"item": "a", "count": 2},
        {"item": "b", "count": 1},
        {"item": "new-product", "count": 0},
    ]
    assert '"total": 3' in listed.headers["X-Pagination"]
    assert client.get("/api/v1/stats").json["items"] == 2
    assert client.get("/listItemCount").json["count"] == 2
    assert "new-product" not in client.get("/listItems").json["items"]


def test_an_unknown_item_is_404(client):
    answer = client.get("/api/v1/items/nowhere")
    assert answer.status_code == 404 and "nowhere" in answer.json["message"]


def list_names(client, query: str) -> list[str]:
    answer = client.get(f"/api/v1/items?{query}")
    assert answer.status_code == 200, answer.json
    return [row["item"] for row in answer.json]


def check_list_filters(client) -> None:
    store(client, ["run", "walk", "hat", "plain"])
    client.post(
        "/api/v1/items",
        json={
            "items": [
                {"item": "run", "categories": ["shoes/running"], "labels": ["sale", "acme"]},
                {"item": "walk", "categories": ["shoes"], "labels": ["acme"], "hidden": True},
                {"item": "hat", "categories": ["shoestring"], "labels": ["Sale"]},
                {"item": "unsold", "categories": ["shoes"]},
            ]
        },
    )
    assert list_names(client, "category=shoes") == ["run", "walk", "unsold"]  # sub-paths, not prefixes
    assert list_names(client, "category=shoes/running&category=shoestring") == ["hat", "run"]
    assert list_names(client, "label=acme&label=sale") == ["run"]  # all of, case-sensitive
    assert list_names(client, "hidden=true") == ["walk"]
    assert list_names(client, "hidden=false") == ["hat", "plain", "run", "unsold"]
    assert list_names(client, "category=nothing") == []


def test_the_item_list_filters_by_category_label_and_hidden(client):
    check_list_filters(client)
    check_writes_then_masks(client)


@pytest.mark.postgres
def test_the_catalogue_works_on_postgresql(settings_overrides):
    from airec.app import create_app

    with fresh_database() as url:
        client = create_app(
            {**settings_overrides, "database_url": url, "model_poll_seconds": 0}
        ).test_client()
        check_list_filters(client)
        check_writes_then_masks(client)


def check_writes_then_masks(client) -> None:
    assert client.patch("/api/v1/items/run", json={"hidden": True}).json["hidden_reason"] == "hidden"
    assert client.post("/api/v1/items", json={"items": [{"item": "run"}, {"item": "new"}]}).json == {
        "created": 1,
        "updated": 1,
    }
    client.patch("/api/v1/items/hat", json={"available_until": "2000-01-01T00:00:00Z"})
    check_masks_from_the_table()


def check_masks_from_the_table() -> None:
    """The masks read the rows this engine hands back (booleans, datetimes or text) as the list did."""
    import time

    from airec.catalogue.masks import CatalogueMasks, Rules
    from airec.catalogue.service import catalogue_version
    from airec.db import database

    index = {name: i for i, name in enumerate(["run", "walk", "hat", "plain", "unsold", "new"])}
    with database.connection_context():
        masks = CatalogueMasks.build(index, "v", catalogue_version())
    blocked = masks.blocked(Rules(), now=time.time())
    assert [name for name, i in index.items() if blocked[i]] == ["walk", "hat"]  # hidden, window closed
    shoes = masks.blocked(Rules.of(["shoes"]), now=time.time())
    assert [name for name, i in index.items() if not shoes[i]] == ["unsold"]  # run was replaced bare


def test_bulk_upsert_counts_created_and_updated(client):
    first = client.post("/api/v1/items", json={"items": [{"item": "a", **SHOES}, {"item": "b"}]})
    assert first.status_code == 200 and first.json == {"created": 2, "updated": 0}
    again = client.post("/api/v1/items", json={"items": [{"item": "b", "hidden": True}, {"item": "c"}]})
    assert again.json == {"created": 1, "updated": 1}
    assert client.get("/api/v1/items/b").json["hidden"] is True


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({"item": "x", "labels": [f"l{i}" for i in range(101)]}, "items.1.labels"),
        ({"item": "x", "categories": ["bad\nname"]}, "items.1.categories.0"),
        ({"item": "x", "categories": ["c" * 257]}, "items.1.categories.0"),
        ({"item": "x", "properties": {"blob": "x" * 4100}}, "items.1.properties"),
        ({"item": "x", "available_from": "2026-01-01T00:00:00"}, "items.1.available_from"),
        (
            {
                "item": "x",
                "available_from": "2026-01-02T00:00:00Z",
                "available_until": "2026-01-01T00:00:00Z",
            },
            "items.1.available_until",
        ),
        ({"item": "x", "hidden": "yes"}, "items.1.hidden"),
        ({"item": "x", "colour": "red"}, "items.1.colour"),
        ({"categories": []}, "items.1.item"),
        ({"item": "ok"}, "items.1.item"),  # the same item twice in one batch
    ],
)
def test_a_bad_bulk_entry_is_a_422_naming_its_index_and_field_and_stores_nothing(client, entry, field):
    answer = client.post("/api/v1/items", json={"items": [{"item": "ok", **SHOES}, entry]})
    assert answer.status_code == 422, answer.json
    assert field in answer.json["message"], answer.json["message"]
    assert client.get("/api/v1/items/ok").status_code == 404


def test_patch_that_puts_the_window_out_of_order_with_what_is_stored_is_refused(client):
    client.put("/api/v1/items/x", json={"available_from": "2026-06-01T00:00:00Z", "labels": ["kept"]})
    answer = client.patch("/api/v1/items/x", json={"available_until": "2026-05-01T00:00:00Z", "labels": []})
    assert answer.status_code == 422 and "available_until" in answer.json["message"]
    assert client.get("/api/v1/items/x").json["labels"] == ["kept"]


def test_bad_names_in_the_path_and_too_many_items_are_refused(client):
    too_long = client.put("/api/v1/items/" + "n" * 257, json={})
    assert (
        too_long.status_code == 422
        and too_long.json["message"] == "Invalid input. item: Longer than 256 characters."
    )
    too_many = {"items": [{"item": f"i{n}"} for n in range(10_001)]}
    answer = client.post("/api/v1/items", json=too_many)
    assert answer.status_code == 422 and "split" in answer.json["message"]


def test_a_bulk_body_over_the_size_limit_is_413_telling_to_split(settings_overrides):
    from airec.app import create_app

    client = create_app({**settings_overrides, "max_body_bytes": 2000}).test_client()
    answer = client.post("/api/v1/items", json={"items": [{"item": f"item-{n}"} for n in range(200)]})
    assert answer.status_code == 413 and "split the batch" in answer.json["message"]


def test_readers_read_and_only_ingest_or_admin_keys_write(auth_app):
    from airec.auth.service import create_key

    client = auth_app.test_client()
    with auth_app.app_context():
        keys = {role: create_key(name=f"k-{role}", role=role)[1] for role in ("read", "ingest", "admin")}

    def as_role(role: str) -> dict:
        return {"Authorization": f"Bearer {keys[role]}"}

    refused = client.put("/api/v1/items/x", json={}, headers=as_role("read"))
    assert refused.status_code == 403 and "'ingest' role" in refused.json["message"]
    described = client.put("/api/v1/items/x", json={}, headers=as_role("ingest"))
    assert (
        described.status_code == 200 and described.json["item"] == "x" and described.json["described"] is True
    )
    assert client.patch("/api/v1/items/x", json={"hidden": True}, headers=as_role("admin")).status_code == 200
    assert (
        client.post("/api/v1/items", json={"items": [{"item": "y"}]}, headers=as_role("read")).status_code
        == 403
    )
    assert client.get("/api/v1/items/x", headers=as_role("read")).json["hidden"] is True
    assert client.get("/api/v1/items/x").status_code == 401


def test_the_spec_documents_the_catalogue_with_examples(client):
    spec = client.get("/openapi.json").json
    item = spec["paths"]["/api/v1/items/{item}"]
    assert {"get", "put", "patch"} <= set(item)
    assert "post" in spec["paths"]["/api/v1/items"]
    bulk = spec["components"]["schemas"]["Bulk"]["properties"]["items"]
    assert bulk["example"][0]["categories"] == ["shoes", "shoes/running"]
