"""Issue 20, parts 1-4: identified answers, impressions off the request path, typed feedback, takes and
online take rates, through the real app over real SQLite (PostgreSQL where marked)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from airec.db import database
from airec.feedback import store
from airec.tables import Impression, ImpressionCount, Record, utcnow
from tests.synthetic import INTERACTIONS, RECOMMEND, ingest, planted, recommend, train

ONLINE = "/api/v1/stats/online"
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]{16}$")


@pytest.fixture
def settings_overrides(settings_overrides: dict) -> dict:
    return {**settings_overrides, "model_poll_seconds": 0}


pytestmark = pytest.mark.usefixtures("fresh_popularity_cache")


@pytest.fixture
def trained(planted_itemknn):
    return planted_itemknn


def queue(app):
    return app.extensions["airec_scope"].impressions


def flush(app) -> None:
    """Write what this app's worker holds now (the writer thread would within a second)."""
    queue(app).flush()


def impressions(app) -> list[Impression]:
    with database.connection_context():
        return list(Impression.select().order_by(Impression.id))


def metric(client, name: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_every_answer_is_identified_on_every_route(client, app, trained):
    answers = [
        recommend(client, ["g1-i0", "g1-i1"], k=3),
        client.get("/api/v1/users/u1/recommendations?k=3").get_json(),
        client.get("/api/v1/items/g1-i0/similar?k=3").get_json(),
        client.post("/proposeInteraction", json={"items": ["g1-i0"], "k": 3}).get_json(),
    ]
    ids = [answer["recommendation_id"] for answer in answers]
    assert all(URL_SAFE.match(rid) for rid in ids) and len(set(ids)) == 4
    assert all(answer["variant"] is None and answer["model_version"] for answer in answers)
    assert all("filtered" in answer for answer in answers)  # the catalogue's key is kept
    propose = answers[3]
    assert set(propose) == {"items", "scores", "filtered", "recommendation_id", "variant", "model_version"}
    assert len(propose["items"]) == len(propose["scores"]) == 3

    flush(app)
    rows = {row.recommendation_id: row for row in impressions(app)}
    assert [rows[rid].route for rid in ids] == ["recommendations", "user", "similar", "propose"]
    assert rows[ids[1]].user == "u1" and rows[ids[0]].user is None
    assert rows[ids[3]].items == propose["items"]  # in the order shown: position = index + 1
    assert rows[ids[0]].items == [entry["item"] for entry in answers[0]["items"]]


def test_the_set_route_takes_an_optional_user_and_refuses_a_bad_one(client, app, trained):
    answer = recommend(client, ["g1-i0"], k=2, user="shopper")
    flush(app)
    assert impressions(app)[-1].recommendation_id == answer["recommendation_id"]
    assert impressions(app)[-1].user == "shopper"
    for bad in ("", "x" * 257, 7):
        response = client.post(RECOMMEND, json={"items": ["g1-i0"], "user": bad})
        assert response.status_code == 422, bad
        assert "user" in response.get_json()["errors"]["json"]


def test_a_full_queue_drops_and_counts_and_never_blocks(client, app, trained):
    writer = queue(app)
    writer.stop()  # no writer thread: the queue only fills
    before = len(impressions(app))
    writer.capacity = 3
    dropped, written = (
        metric(client, "airec_impressions_dropped_total"),
        metric(client, "airec_impressions_total"),
    )
    for _ in range(5):
        recommend(client, ["g2-i0"], k=2)
    assert len(writer) == 3
    assert metric(client, "airec_impressions_dropped_total") == dropped + 2  # counters are per process
    flush(app)
    assert len(impressions(app)) == before + 3
    assert metric(client, "airec_impressions_total") == written + 3


def test_the_writer_thread_flushes_within_a_second_and_stopping_flushes(client, app, trained):
    import time

    from airec.app import stop_background

    rid = recommend(client, ["g3-i0"], k=2)["recommendation_id"]
    deadline = time.monotonic() + 5
    while rid not in {row.recommendation_id for row in impressions(app)}:
        assert time.monotonic() < deadline, "not written by the writer thread"
        time.sleep(0.1)
    stop_background(app)
    rid = recommend(client, ["g3-i0"], k=2)["recommendation_id"]  # restarts the threads
    stop_background(app)  # clean shutdown: what is queued is written
    assert rid in {row.recommendation_id for row in impressions(app)}


def test_impressions_off_records_none_but_answers_keep_their_ids(settings_overrides):
    from airec.app import create_app

    app = create_app({**settings_overrides, "impressions": False})
    client = app.test_client()
    ingest(client, planted(units=40)[0])
    answer = recommend(client, ["g1-i0"], k=2)
    assert URL_SAFE.match(answer["recommendation_id"]) and answer["variant"] is None
    assert queue(app) is None
    assert impressions(app) == []


def test_old_impressions_are_deleted_with_their_counts(app):
    old, new = utcnow() - dt.timedelta(days=40), utcnow()
    batch = [(f"old{i:013d}", "recommendations", None, "v", None, ["a", "b"], old) for i in range(25)]
    batch.append(("new0000000000000", "recommendations", None, "v", None, ["a"], new))
    with database.connection_context():
        store.write_impressions(batch)
        assert store.delete_expired(30) == 25
        assert [row.recommendation_id for row in Impression.select()] == ["new0000000000000"]
        assert {row.period for row in ImpressionCount.select()} == {store.hour_of(new), store.day_of(new)}


def test_a_batch_adds_up_per_hour_and_day_by_position(app):
    """A batch's impressions are counted per hour (and day), route, version, variant and position: 0 for
    the impression itself, 1..k for its items."""
    day = dt.datetime(2026, 11, 30)
    at = [day.replace(hour=9, minute=5), day.replace(hour=9, minute=55, second=59), day.replace(hour=10)]
    batch = [
        (f"r{i:015d}", "recommendations", None, "v", None, ["a", "b"], moment) for i, moment in enumerate(at)
    ]
    batch.append(("r999999999999999", "similar", None, "v", "new", ["a"], at[2]))
    with database.connection_context():
        store.write_impressions(batch)
        counts = {
            (row.span, row.period, row.route, row.variant, row.position): row.impressions
            for row in ImpressionCount.select()
        }
    nine, ten = day.replace(hour=9), day.replace(hour=10)
    assert counts == {
        **{("hour", nine, "recommendations", "", position): 2 for position in (0, 1, 2)},
        **{("hour", ten, "recommendations", "", position): 1 for position in (0, 1, 2)},
        **{("day", day, "recommendations", "", position): 3 for position in (0, 1, 2)},
        **{("hour", ten, "similar", "new", position): 1 for position in (0, 1)},
        **{("day", day, "similar", "new", position): 1 for position in (0, 1)},
    }


def test_typed_feedback_is_stored_and_bad_fields_are_422s_storing_nothing(client, app):
    body = {"user": "u", "items": ["a", "b"], "type": "purchase", "value": 19.5, "recommendation_id": "r1"}
    assert client.post(INTERACTIONS, json=body).status_code == 201
    batch = {"records": [{"items": ["c"], "type": "view"}, {"user": "u", "items": ["d"]}]}
    assert client.post(INTERACTIONS, json=batch).status_code == 201
    with database.connection_context():
        rows = [(r.type, r.value, r.recommendation_id) for r in Record.select().order_by(Record.id)]
    assert rows == [("purchase", 19.5, "r1"), ("view", None, None), (None, None, None)]

    bad = [
        ({"items": ["a"], "type": "x" * 65}, "type"),
        ({"items": ["a"], "type": ""}, "type"),
        ({"items": ["a"], "value": "many"}, "value"),
        ({"items": ["a"], "value": "Infinity"}, "value"),
        ({"items": ["a"], "value": "NaN"}, "value"),
        ({"items": ["a"], "value": True}, "value"),
        ({"items": ["a"], "recommendation_id": "r" * 65}, "recommendation_id"),
        ({"records": [{"items": ["a"]}, {"items": ["b"], "type": "y" * 65}]}, "records"),
    ]
    for body, field in bad:
        response = client.post(INTERACTIONS, json=body)
        assert response.status_code == 422, (body, response.get_json())
        assert field in str(response.get_json()), response.get_json()
    # JSON itself cannot hold a non-finite number: the strict parser refuses one before any field.
    raw = client.post(INTERACTIONS, data='{"items": ["a"], "value": 1e400}', content_type="application/json")
    assert raw.status_code == 400 and "1e400" in raw.get_json()["message"]
    with database.connection_context():
        assert Record.select().count() == 3


def test_unknown_types_are_422_when_event_types_are_set(settings_overrides):
    from airec.app import create_app

    app = create_app({**settings_overrides, "event_types": "view,purchase"})
    client = app.test_client()
    assert client.post(INTERACTIONS, json={"items": ["a"], "type": "view"}).status_code == 201
    assert client.post(INTERACTIONS, json={"items": ["a"]}).status_code == 201  # the default type
    response = client.post(INTERACTIONS, json={"items": ["a"], "type": "cart"})
    assert response.status_code == 422 and "AIREC_EVENT_TYPES" in str(response.get_json()["errors"])


def test_an_unknown_recommendation_id_is_stored_counted_and_takes_nothing(client, app, trained):
    before = metric(client, "airec_unknown_recommendation_ids_total")
    body = {"user": "u1", "items": ["g1-i3"], "recommendation_id": "never-issued"}
    assert client.post(INTERACTIONS, json=body).status_code == 201
    assert metric(client, "airec_unknown_recommendation_ids_total") == before + 1
    assert client.get(ONLINE).get_json()["takes"] == 0


def _names(answer: dict) -> list[str]:
    return [entry["item"] for entry in answer["items"]]


def test_takes_by_id_and_by_user_at_most_once_and_never_negative(settings_overrides):
    from airec.app import create_app

    app = create_app({**settings_overrides, "negative_types": "dislike"})
    client = app.test_client()
    ingest(client, planted(units=160)[0])
    train(client, {"algorithm": "itemknn"})

    first = recommend(client, ["g2-i0", "g2-i1"], k=4)
    shown = _names(first)
    event = {"items": [shown[2]], "recommendation_id": first["recommendation_id"]}
    assert client.post(INTERACTIONS, json=event).status_code == 201
    assert client.post(INTERACTIONS, json=event).status_code == 201  # taken at most once
    stats = client.get(ONLINE).get_json()
    assert (stats["impressions"], stats["takes"]) == (1, 1)
    assert [(p["position"], p["impressions"], p["takes"]) for p in stats["by_position"]] == [
        (1, 1, 0),
        (2, 1, 0),
        (3, 1, 1),
        (4, 1, 0),
    ]

    # Without an id: the same user's event on an item shown to them takes the most recent such answer.
    older = client.get("/api/v1/users/u3/recommendations?k=3").get_json()
    newer = client.get("/api/v1/users/u3/recommendations?k=3").get_json()
    assert _names(older) == _names(newer)
    dislike = {"user": "u3", "items": [_names(newer)[0]], "type": "dislike"}
    assert client.post(INTERACTIONS, json=dislike).status_code == 201  # negative: never a take
    assert client.get(ONLINE, query_string={"route": "user"}).get_json()["takes"] == 0
    take = {"user": "u3", "items": [_names(newer)[1]], "type": "cart"}
    assert client.post(INTERACTIONS, json=take).status_code == 201
    with database.connection_context():
        taken = {r.recommendation_id: r.taken_position for r in Impression.select()}
    assert taken[newer["recommendation_id"]] == 2 and taken[older["recommendation_id"]] is None
    other_user = {"user": "u4", "items": [_names(older)[0]]}  # never shown to u4: no take
    assert client.post(INTERACTIONS, json=other_user).status_code == 201
    stats = client.get(ONLINE).get_json()
    assert (stats["impressions"], stats["takes"]) == (3, 2)
    assert metric(client, "airec_takes_total") >= 2


def test_online_stats_filters_interval_and_bad_input(client, app):
    now = utcnow()
    batch = [(f"r{i:015d}", "recommendations", None, "m1", None, ["a", "b"], now) for i in range(100)]
    batch += [(f"s{i:015d}", "similar", None, "m2", "new", ["a"], now) for i in range(50)]
    with database.connection_context():
        store.write_impressions(batch)
        for row in Impression.select().where(Impression.model_version == "m1").limit(10):
            assert store.mark_taken(row, 1, now)
    all_ = client.get(ONLINE).get_json()
    assert (all_["impressions"], all_["takes"]) == (150, 10)
    m1 = client.get(ONLINE, query_string={"model_version": "m1"}).get_json()
    assert (m1["impressions"], m1["takes"], m1["take_rate"]) == (100, 10, 0.1)
    low, high = m1["interval"]
    assert low == pytest.approx(0.0552, abs=1e-3) and high == pytest.approx(0.1744, abs=1e-3)  # Wilson
    assert client.get(ONLINE, query_string={"variant": "new"}).get_json()["impressions"] == 50
    assert client.get(ONLINE, query_string={"route": "similar"}).get_json()["takes"] == 0
    later = (now + dt.timedelta(hours=2)).isoformat()
    empty = client.get(ONLINE, query_string={"since": later}).get_json()
    assert (empty["impressions"], empty["take_rate"], empty["interval"], empty["by_position"]) == (
        0,
        None,
        None,
        [],
    )

    for query, field in (
        ({"route": "elsewhere"}, "route"),
        ({"since": "yesterday"}, "since"),
        ({"since": later, "until": now.isoformat()}, "until"),
        ({"variant": "v" * 65}, "variant"),
    ):
        response = client.get(ONLINE, query_string=query)
        assert response.status_code == 422, query
        assert field in response.get_json()["errors"]["query"], response.get_json()


def test_online_stats_needs_the_read_role(auth_client, keys):
    assert auth_client.get(ONLINE).status_code == 401
    assert auth_client.get(ONLINE, headers={"Authorization": f"Bearer {keys['ingest']}"}).status_code == 403
    assert auth_client.get(ONLINE, headers={"Authorization": f"Bearer {keys['read']}"}).status_code == 200


@pytest.fixture
def h10_postgres_url():
    """A throw-away PostgreSQL database named for this branch (skips without PostgreSQL)."""
    from tests.pg_helpers import fresh_database

    with fresh_database(prefix="airec_h10") as url:
        yield url


@pytest.mark.postgres
def test_impressions_takes_and_rates_on_postgresql(settings_overrides, h10_postgres_url):
    from airec.app import create_app, stop_background

    app = create_app({**settings_overrides, "database_url": h10_postgres_url, "negative_types": "dislike"})
    client = app.test_client()
    try:
        ingest(client, planted(units=160)[0])
        train(client, {"algorithm": "itemknn"})
        answer = client.get("/api/v1/users/u5/recommendations?k=3").get_json()
        shown = _names(answer)
        named = {"items": [shown[1]], "recommendation_id": answer["recommendation_id"], "type": "cart"}
        assert client.post(INTERACTIONS, json=named).status_code == 201
        second = recommend(client, ["g1-i0"], k=2, user="u9")
        by_user = {"user": "u9", "items": [_names(second)[0]], "type": "purchase", "value": 3}
        assert client.post(INTERACTIONS, json=by_user).status_code == 201
        stats = client.get(ONLINE).get_json()
        assert (stats["impressions"], stats["takes"]) == (2, 2)
        assert [(p["position"], p["takes"]) for p in stats["by_position"]] == [(1, 1), (2, 1), (3, 0)]
        with database.connection_context():
            assert store.delete_expired(30) == 0
            assert {r.user for r in Impression.select()} == {"u5", "u9"}
    finally:
        stop_background(app)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"event_weights": "view:1,cart:x"}, "AIREC_EVENT_WEIGHTS"),
        ({"event_weights": "view:-1"}, "AIREC_EVENT_WEIGHTS"),
        ({"event_weights": "view:inf"}, "AIREC_EVENT_WEIGHTS"),
        ({"event_types": "view", "negative_types": "dislike"}, "AIREC_NEGATIVE_TYPES"),
        ({"event_types": "view", "event_weights": "cart:3"}, "AIREC_EVENT_WEIGHTS"),
        ({"negative_types": "d" * 65}, "AIREC_NEGATIVE_TYPES"),
        ({"impression_days": 0}, "AIREC_IMPRESSION_DAYS"),
        ({"attribution_hours": 0}, "AIREC_ATTRIBUTION_HOURS"),
    ],
)
def test_feedback_settings_are_validated_naming_the_setting(overrides, named):
    from airec.config import Settings

    with pytest.raises(ValueError, match=named):
        Settings.from_env(overrides)


def test_feedback_settings_parse():
    from airec.config import Settings

    settings = Settings.from_env(
        {"event_types": "view, cart,purchase", "event_weights": "view:1,cart:3", "negative_types": ""}
    )
    assert settings.event_type_set == {"interaction", "view", "cart", "purchase"}
    assert settings.event_weight_map == {"view": 1.0, "cart": 3.0}
    assert settings.negative_type_set == frozenset()
    assert Settings.from_env({}).event_type_set is None  # any type


def test_recommendation_ids_are_distinct_across_reads_and_in_a_forked_worker():
    """Ids come from a pool of random bytes read 256 ids at a time: every id of a long run is distinct
    and URL-safe, and a forked child (a gunicorn worker) never repeats its parent's pool."""
    import os

    from airec.feedback.service import new_recommendation_id

    ids = [new_recommendation_id() for _ in range(600)]  # crosses two refills
    assert len(set(ids)) == 600 and all(URL_SAFE.fullmatch(rid) and len(rid) == 16 for rid in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its next ids and leave without running pytest's teardown
        os.close(read)
        os.write(write, " ".join(new_recommendation_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [new_recommendation_id() for _ in range(50)]
    assert len(child) == 50 and not set(child) & set(parent)


def test_recommendation_ids_are_distinct_across_threads_that_refill_the_pool():
    """Threads of one worker draw ids while others refill the pool: every id is distinct and whole."""
    import sys
    import threading

    from airec.feedback.service import new_recommendation_id

    drawn: list[list[str]] = [[] for _ in range(8)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, inside the draw too
    try:
        threads = [
            threading.Thread(target=lambda out=out: out.extend(new_recommendation_id() for _ in range(3000)))
            for out in drawn
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(switch)
    ids = [rid for out in drawn for rid in out]
    assert len(ids) == len(set(ids)) == 24000
    assert all(URL_SAFE.fullmatch(rid) and len(rid) == 16 for rid in ids)
