"""Rate limits per API key: off by default; memory storage per process; Redis storage (the real one at
127.0.0.1:6379) shared by every app instance. Over the limit: 429, the JSON error body, Retry-After."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from airec.auth.service import create_key
from airec.db import database

RECOMMEND = "/api/v1/recommendations"
REDIS_URL = "redis://127.0.0.1:6379/0"
LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After")


def ask(client, key: str | None = None, **environ):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.post(RECOMMEND, json={"items": []}, headers=headers, environ_base=environ)


def new_keys(app, *names: str) -> list[str]:
    with app.app_context(), database.connection_context():
        return [create_key(name=name, role="read")[1] for name in names]


def assert_refused(response, limit: str) -> None:
    assert response.status_code == 429
    body = response.get_json()
    assert body["code"] == 429 and body["status"] == "Too Many Requests"
    assert limit in body["message"] and "Retry-After" in body["message"]
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Remaining"] == "0"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix of this test's own in the shared Redis; its keys are deleted afterwards."""
    name = f"airec-test-{uuid.uuid4().hex[:12]}"
    yield name
    store = redis.Redis.from_url(REDIS_URL)
    keys = list(store.scan_iter(f"*{name}*"))
    if keys:
        store.delete(*keys)
    store.close()


def test_off_by_default_nothing_is_counted_or_refused(client):
    for _ in range(60):
        response = ask(client)
        assert response.status_code == 200
        assert not set(LIMIT_HEADERS) & set(response.headers.keys())


@pytest.fixture
def limited(settings_overrides: dict):
    from airec.app import create_app

    app = create_app({**settings_overrides, "auth": True, "rate_limit": "3/minute"})
    return app


def test_memory_storage_gives_each_key_its_own_budget(limited):
    client = limited.test_client()
    first, second = new_keys(limited, "first", "second")
    answers = [ask(client, first) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 200]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "3" and "Retry-After" not in r.headers for r in answers)
    assert_refused(ask(client, first), "3 per 1 minute")

    assert ask(client, second).status_code == 200  # another key, another budget
    assert ask(client, "airec_" + "x" * 43).status_code == 401  # a bad key is refused, not counted
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):  # probes and docs are exempt
        for _ in range(5):
            response = client.get(path)
            assert response.status_code == 200, path
            assert "X-RateLimit-Limit" not in response.headers


def test_the_429_is_documented_only_when_limits_are_on(client, settings_overrides):
    from airec.app import create_app

    assert '"429"' not in client.get("/openapi.json").get_data(as_text=True)
    limited = create_app({**settings_overrides, "rate_limit": "3/minute"})  # after: the spec is shared
    spec = limited.test_client().get("/openapi.json").get_json()
    assert "Retry-After" in spec["components"]["responses"]["TOO_MANY_REQUESTS"]["headers"]
    assert "429" in spec["paths"][RECOMMEND]["post"]["responses"]
    assert "429" not in spec["paths"]["/healthz"]["get"]["responses"]


def test_without_a_key_the_budget_is_the_client_address(settings_overrides):
    from airec.app import create_app

    client = create_app({**settings_overrides, "rate_limit": "2/minute"}).test_client()  # auth off
    assert [ask(client, REMOTE_ADDR="10.0.0.1").status_code for _ in range(3)] == [200, 200, 429]
    assert ask(client, REMOTE_ADDR="10.0.0.2").status_code == 200


@pytest.mark.redis
def test_redis_storage_is_one_count_for_every_app_instance(settings_overrides, prefix):
    """Two apps (as two workers or hosts would be) over one database and the real Redis."""
    from airec.app import create_app

    config = {
        **settings_overrides,
        "auth": True,
        "rate_limit": "4/minute",
        "rate_limit_storage": REDIS_URL,
        "rate_limit_prefix": prefix,
    }
    one, two = create_app(config), create_app(config)
    key, other = new_keys(one, "shared", "other")
    assert [ask(one.test_client(), key).status_code for _ in range(3)] == [200, 200, 200]
    last = ask(two.test_client(), key)
    assert last.status_code == 200 and last.headers["X-RateLimit-Remaining"] == "0"
    assert_refused(ask(one.test_client(), key), "4 per 1 minute")
    assert_refused(ask(two.test_client(), key), "4 per 1 minute")
    assert ask(two.test_client(), other).status_code == 200  # its own budget, in the same store

    stored = redis.Redis.from_url(REDIS_URL)
    try:
        assert any(prefix.encode() in name for name in stored.scan_iter(f"*{prefix}*"))
    finally:
        stored.close()


@pytest.mark.redis
def test_an_unreachable_storage_falls_back_to_counting_in_the_process(settings_overrides, prefix):
    """Redis down is no outage of the API: each process counts on its own until it is back."""
    from airec.app import create_app

    closed = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    config = {"rate_limit": "2/minute", "rate_limit_storage": closed, "rate_limit_prefix": prefix}
    client = create_app({**settings_overrides, **config}).test_client()
    assert [ask(client).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(
    ("setting", "value", "words"),
    [
        ("rate_limit", "200 per fortnight", "AIREC_RATE_LIMIT"),
        ("rate_limit", "fast", "200/second"),
        ("rate_limit_storage", "postgresql://db", "AIREC_RATE_LIMIT_STORAGE"),
        ("rate_limit_storage", "redis", "redis://host:6379/0"),
    ],
)
def test_bad_settings_are_refused_at_startup(setting, value, words):
    from airec.config import Settings

    with pytest.raises(ValueError, match=words):
        Settings.from_env({setting: value})


@pytest.mark.redis
@pytest.mark.gunicorn
@pytest.mark.slow  # two gunicorn boots, ~20 s; the two-app test above shows the same in-process
def test_two_gunicorn_servers_share_one_count_in_redis(tmp_path, prefix):
    """Two real gunicorn servers (one worker each, their own database: two hosts) share the budget of
    a client address through Redis; with `memory` each would have its own."""
    from tests.gunicorn_helpers import serve

    env = {
        "AIREC_RATE_LIMIT": "10/minute",
        "AIREC_RATE_LIMIT_STORAGE": REDIS_URL,
        "AIREC_RATE_LIMIT_PREFIX": prefix,
        "AIREC_LOG_LEVEL": "INFO",
    }
    with serve(tmp_path / "a", workers=1, env=env) as one, serve(tmp_path / "b", workers=1, env=env) as two:
        body = {"items": []}
        first = [one.post(RECOMMEND, json=body).status_code for _ in range(6)]
        second = [two.post(RECOMMEND, json=body).status_code for _ in range(6)]
        assert first == [200] * 6 and second == [200] * 4 + [429] * 2
        refused = one.post(RECOMMEND, json=body)
        assert refused.status_code == 429 and refused.json()["code"] == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert one.get("/healthz").status_code == two.get("/healthz").status_code == 200
