"""POST /api/v1/interactions and ingest_records(): what is stored, what is refused, and atomicity."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airec.ingestion import service
from airec.ingestion.service import IngestError, ingest_records, name_problem
from airec.stats.service import counts, item_popularity

URL = "/api/v1/interactions"
EMPTY = {"users": 0, "items": 0, "records": 0, "interactions": 0}


def stats(client) -> dict:
    return client.get("/api/v1/stats").get_json()


# --- through the API --------------------------------------------------------------------------------


def test_one_record_is_stored_and_duplicates_collapse(client):
    response = client.post(URL, json={"user": "father", "items": ["beer", "diapers", "chips", "beer"]})
    assert response.status_code == 201
    assert response.get_json() == {"records": 1, "interactions": 3}
    assert stats(client) == {"users": 1, "items": 3, "records": 1, "interactions": 3}


def test_batch_with_anonymous_baskets_and_timestamps(client):
    body = {
        "records": [
            {"user": "father", "items": ["beer", "diapers"], "timestamp": "2024-05-01T20:30:00+02:00"},
            {"items": ["milk", "bread"]},
            {"user": "father", "items": ["chips"], "timestamp": None},
        ]
    }
    response = client.post(URL, json=body)
    assert response.status_code == 201
    assert response.get_json() == {"records": 3, "interactions": 5}
    assert stats(client) == {"users": 1, "items": 5, "records": 3, "interactions": 5}

    exported = client.get(URL).get_json()["interactions"]
    assert exported[0]["timestamp"].startswith("2024-05-01T18:30:00")  # stored as UTC
    assert [row["user"] for row in exported] == ["father", "father", None, None, "father"]
    assert exported[2]["record"] == exported[3]["record"] != exported[0]["record"]


def test_same_user_and_items_are_reused_across_requests(client):
    client.post(URL, json={"user": "u", "items": ["a", "b"]})
    client.post(URL, json={"user": "u", "items": ["b", "c"]})
    assert stats(client) == {"users": 1, "items": 3, "records": 2, "interactions": 4}


@pytest.mark.parametrize(
    "body, status, field",
    [
        ({}, 422, "items"),
        ({"user": "u"}, 422, "items"),
        ({"items": []}, 422, "items"),
        ({"items": "beer"}, 422, "items"),
        ({"items": ["ok", 3]}, 422, "items.1"),
        ({"items": ["ok", None]}, 422, "items.1"),
        ({"items": [""]}, 422, "items.0"),
        ({"items": ["x" * 257]}, 422, "items.0"),
        ({"items": ["tab\there"]}, 422, "items.0"),
        ({"items": ["nul\x00"]}, 422, "items.0"),
        ({"items": ["a"], "user": ""}, 422, "user"),
        ({"items": ["a"], "user": 42}, 422, "user"),
        ({"items": ["a"], "timestamp": "yesterday"}, 422, "timestamp"),
        ({"items": ["a"], "colour": "red"}, 422, "colour"),
        ({"records": []}, 422, "records"),
        ({"records": {"items": ["a"]}}, 422, "records"),
        ({"records": [{"items": ["a"]}], "items": ["b"]}, 422, "records"),
        ({"records": [{"items": ["a"]}, {"user": "u"}]}, 422, "records.1.items"),
        ({"records": [{"items": ["a"], "extra": 1}]}, 422, "records.0.extra"),
    ],
)
def test_bad_input_is_refused_with_the_field_named_and_nothing_stored(client, body, status, field):
    response = client.post(URL, json=body)
    assert response.status_code == status
    payload = response.get_json()
    assert payload["code"] == status
    assert f"{field}:" in payload["message"], payload["message"]
    assert stats(client) == EMPTY


def test_body_that_is_not_json_or_not_an_object(client):
    not_json = client.post(URL, data={"user": "father", "items": "beer"})
    assert not_json.status_code == 415
    assert "JSON" in not_json.get_json()["message"]

    broken = client.post(URL, data='{"items": [', content_type="application/json")
    assert broken.status_code == 400
    assert "JSON" in broken.get_json()["message"]

    a_list = client.post(URL, json=[{"items": ["a"]}])
    assert a_list.status_code == 422
    assert "object" in a_list.get_json()["message"]
    assert stats(client) == EMPTY


def test_failed_batch_stores_nothing(client):
    records = [{"user": f"u{i}", "items": [f"i{i}", "shared"]} for i in range(1000)]
    records[499]["items"] = ["fine", {"not": "a name"}]
    response = client.post(URL, json={"records": records})
    assert response.status_code == 422
    assert "records.499.items.1:" in response.get_json()["message"]
    assert stats(client) == EMPTY


@pytest.fixture
def small_client(settings_overrides, make_app):
    settings_overrides.update(max_batch_records=3, max_items_per_record=2, max_name_length=5)
    return make_app(settings_overrides).test_client()


def test_limits_come_from_settings(small_client):
    too_many = small_client.post(URL, json={"records": [{"items": ["a"]}] * 4})
    assert too_many.status_code == 422
    assert "records: At most 3 records per request; got 4." in too_many.get_json()["message"]

    too_wide = small_client.post(URL, json={"items": ["a", "b", "c"]})
    assert "items: At most 2 items per record; got 3." in too_wide.get_json()["message"]

    too_long = small_client.post(URL, json={"items": ["abcdef"]})
    assert "items.0: Longer than 5 characters." in too_long.get_json()["message"]

    assert small_client.post(URL, json={"records": [{"items": ["a", "b"]}] * 3}).status_code == 201


STRANGE_NAMES = [
    "ビール",
    "おむつ 🍼",
    "🍺",
    "  leading and trailing spaces  ",
    "'; DROP TABLE items; --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    'quote " and \\ backslash',
    "Ünïcödé, with comma",
    "x" * 256,
]


def test_unusual_names_round_trip_verbatim(client):
    response = client.post(URL, json={"user": "利用者 ①", "items": STRANGE_NAMES})
    assert response.status_code == 201
    listed = client.get("/api/v1/items?page_size=100").get_json()
    assert sorted(row["item"] for row in listed) == sorted(STRANGE_NAMES)
    exported = client.get(URL).get_json()["interactions"]
    assert [row["item"] for row in exported] == STRANGE_NAMES
    assert {row["user"] for row in exported} == {"利用者 ①"}


def test_openapi_documents_the_endpoint(client):
    spec = client.get("/openapi.json").get_json()
    operations = spec["paths"]["/api/v1/interactions"]
    assert {"get", "post"} <= set(operations)
    body = operations["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"one record", "a batch"}


# --- the service, without Flask -----------------------------------------------------------------------


def test_service_counts_and_reuses_ids(db):
    assert ingest_records([{"user": "u", "items": ["a", "b", "a"]}, {"items": ["b"]}]) == {
        "records": 2,
        "interactions": 3,
    }
    assert ingest_records([]) == {"records": 0, "interactions": 0}
    assert counts() == {"users": 1, "items": 2, "records": 2, "interactions": 3}
    assert item_popularity() == [("b", 2), ("a", 1)]


def test_service_handles_more_names_than_one_statement_takes(db):
    records = [{"user": f"user-{i}", "items": [f"item-{i}", f"item-{i + 1}"]} for i in range(2500)]
    assert ingest_records(records) == {"records": 2500, "interactions": 5000}
    assert counts() == {"users": 2500, "items": 2501, "records": 2500, "interactions": 5000}


def test_service_converts_aware_timestamps_to_utc(db):
    from airec.tables import Record

    aware = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    ingest_records([{"items": ["a"], "timestamp": aware}])
    assert Record.get().timestamp == dt.datetime(2024, 1, 1, 17, 0)


@pytest.mark.parametrize(
    "records, field",
    [
        ([{"items": []}], "records.0.items"),
        ([{"items": ["a"]}, {"items": ["ok", 7]}], "records.1.items.1"),
        ([{"items": ["a"], "user": "bad\nname"}], "records.0.user"),
        ([{"items": ["a"], "timestamp": "2024-01-01"}], "records.0.timestamp"),
        ([{"items": ["a"], "score": 1}], "records.0.score"),
        (["not a record"], "records.0"),
    ],
)
def test_service_refuses_bad_records(db, records, field):
    with pytest.raises(IngestError) as info:
        ingest_records(records)
    assert info.value.field == field
    assert counts()["records"] == 0


def test_a_database_failure_mid_batch_rolls_everything_back(db, monkeypatch):
    real = service._insert_values

    def failing(model, columns, rows, **kwargs):
        if model.__name__ == "Interaction":
            raise RuntimeError("disk full")
        return real(model, columns, rows, **kwargs)

    monkeypatch.setattr(service, "_insert_values", failing)
    with pytest.raises(RuntimeError):
        ingest_records([{"user": "u", "items": ["a", "b"]}, {"items": ["c"]}])
    assert counts() == EMPTY


def test_name_rules():
    assert name_problem("plain") is None
    assert name_problem(" spaced ") is None
    assert name_problem("") == "Must not be empty."
    assert name_problem("\x7f").startswith("Contains the control character U+007F")
    assert name_problem("\x85").startswith("Contains the control character U+0085")
    assert "surrogate" in name_problem("\ud800")
    assert name_problem("y" * 300, max_length=1000) == "Longer than 256 characters."  # column width wins


printable = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(printable, min_size=1, max_size=5))
def test_any_printable_name_round_trips(db, names):
    ingest_records([{"items": names}])
    stored = {name for name, _ in item_popularity()}
    assert set(names) <= stored


PLAIN_BATCHES = [
    [{"user": "u1", "items": ["a", "b", "a"]}, {"items": ["c"]}, {"user": None, "items": ["d"]}],
    [{"user": "ü ☕", "items": ["naïve", " spaced "]}],
    [{"items": ["x" * 256]}],
]
OTHER_BATCHES = [  # each leaves the one-loop check for marshmallow: the answer must not change
    [{"user": "u1", "items": ["a"], "timestamp": "2024-05-01T18:30:00Z"}],
    [{"user": "u1", "items": ["a"]}, {"items": ["tab\there"]}],
    [{"items": []}],
    [{"items": ["a"], "colour": "red"}],
    [{"user": "", "items": ["a"]}],
    [{"user": 7, "items": ["a"]}],
    [{"items": ["x" * 257]}],
    [{"items": ["ok", None]}],
    [["not", "a", "record"]],
    [{"user": "u"}],
]


@pytest.mark.parametrize("batch", PLAIN_BATCHES + OTHER_BATCHES)
def test_the_one_loop_batch_check_loads_as_marshmallow_does(app, batch):
    """RecordList checks plain batches itself; it must accept and refuse exactly as the schema would."""
    import marshmallow as ma

    from airec.ingestion.schemas import IngestSchema, RecordSchema, _plain_records

    class Marshmallow(ma.Schema):
        records = ma.fields.List(ma.fields.Nested(RecordSchema))

    with app.app_context():
        assert (_plain_records(batch) is not None) == (batch in PLAIN_BATCHES)
        try:
            expected = Marshmallow().load({"records": batch})["records"]
        except ma.ValidationError as exc:
            with pytest.raises(ma.ValidationError) as info:
                IngestSchema().load({"records": batch})
            assert info.value.messages == exc.messages
        else:
            assert IngestSchema().load({"records": batch}) == expected
