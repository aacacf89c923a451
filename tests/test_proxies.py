"""AIREC_TRUSTED_PROXIES: behind N proxies the client's address and scheme come from their X-Forwarded-*
headers (werkzeug's ProxyFix); with 0 (a bare gunicorn) nobody's forwarded headers are believed.

The address decides the rate-limit budget of requests without a key, and every access log line names it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from airec.logs import JsonFormatter
from tests.test_console import csrf_token
from tests.test_rate_limits import ask

PROXY = "10.0.0.9"  # nginx, as the service sees its connections


class Lines(logging.Handler):
    """Every access log record, as the JSON line the service writes to stdout."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(JsonFormatter().format(record)))


@pytest.fixture
def access_lines() -> Iterator[list[dict]]:
    handler = Lines()
    logger = logging.getLogger("airec.access")
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def limited_client(settings_overrides: dict, **settings):
    from airec.app import create_app

    return create_app({**settings_overrides, "rate_limit": "2/minute", **settings}).test_client()


def via_proxy(client, forwarded_for: str):
    """A request as nginx passes it on: from the proxy's address, the client's in X-Forwarded-For."""
    return ask(client, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for, HTTP_X_FORWARDED_PROTO="http")


def test_behind_one_trusted_proxy_two_clients_have_separate_budgets(settings_overrides, access_lines):
    client = limited_client(settings_overrides, trusted_proxies=1)
    first = [via_proxy(client, "203.0.113.1").status_code for _ in range(3)]
    assert first == [200, 200, 429]
    assert [via_proxy(client, "203.0.113.2").status_code for _ in range(2)] == [200, 200]
    # nginx appends the peer it saw to whatever the client sent: a forged first entry changes nothing.
    assert via_proxy(client, "198.51.100.7, 203.0.113.1").status_code == 429
    clients = [line["client"] for line in access_lines]
    assert clients == ["203.0.113.1"] * 3 + ["203.0.113.2"] * 2 + ["203.0.113.1"]
    assert all(
        line["message"].startswith(f"{line['client']} POST /api/v1/recommendations") for line in access_lines
    )


def test_with_no_trusted_proxy_a_forged_x_forwarded_for_buys_no_fresh_budget(
    settings_overrides, access_lines
):
    client = limited_client(settings_overrides)  # AIREC_TRUSTED_PROXIES defaults to 0
    forged = [
        ask(client, REMOTE_ADDR="192.0.2.5", HTTP_X_FORWARDED_FOR=f"203.0.113.{n}").status_code
        for n in range(4)
    ]
    assert forged == [200, 200, 429, 429]
    assert ask(client, REMOTE_ADDR="192.0.2.6").status_code == 200  # another real peer, its own budget
    assert [line["client"] for line in access_lines] == ["192.0.2.5"] * 4 + ["192.0.2.6"]


def test_the_console_cookie_is_secure_only_when_a_trusted_proxy_says_https(settings_overrides, keys):
    from airec.app import create_app

    for hops, secure in ((0, False), (1, True)):
        client = create_app({**settings_overrides, "auth": True, "trusted_proxies": hops}).test_client()
        token = csrf_token(client)
        answer = client.post(
            "/login",
            headers={
                "X-Forwarded-Proto": "https",
                "X-Forwarded-For": "203.0.113.1",
                "Referer": "https://localhost/",
            },
            data={"api_key": keys["read"], "csrf_token": token},
        )
        assert answer.status_code == 303, hops
        assert ("Secure" in answer.headers["Set-Cookie"]) is secure, hops


@pytest.mark.parametrize("value", [-1, 6])
def test_a_trusted_proxy_count_out_of_range_is_refused(value):
    from airec.config import Settings

    with pytest.raises(ValueError, match="AIREC_TRUSTED_PROXIES"):
        Settings.from_env({"trusted_proxies": value})


def login_page(server, **headers):
    """The sign-in form (public, so counted per client address); it sets the session cookie."""
    import requests

    return requests.get(f"{server.url}/login", headers=headers, timeout=10)


def access_lines_of(server) -> list[dict]:
    return [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]


@pytest.mark.gunicorn
def test_real_gunicorn_behind_one_proxy_counts_logs_and_secures_each_client(tmp_path):
    """The setting read from the environment by real gunicorn, as nginx would forward two clients."""
    from tests.gunicorn_helpers import serve

    env = {"AIREC_TRUSTED_PROXIES": "1", "AIREC_RATE_LIMIT": "2/minute", "AIREC_AUTH": "on"}
    with serve(tmp_path, workers=1, env=env) as server:
        first = [
            login_page(server, **{"X-Forwarded-For": "203.0.113.1", "X-Forwarded-Proto": p})
            for p in ("https", "http", "http")
        ]
        assert [answer.status_code for answer in first] == [200, 200, 429]
        assert "Secure" in first[0].headers["Set-Cookie"] and "Secure" not in first[1].headers["Set-Cookie"]
        assert login_page(server, **{"X-Forwarded-For": "203.0.113.2"}).status_code == 200
        lines = access_lines_of(server)
    assert [line["client"] for line in lines if line.get("path") == "/login"] == ["203.0.113.1"] * 3 + [
        "203.0.113.2"
    ]
    readiness = [line for line in lines if line.get("path") == "/readyz"]
    assert readiness and all(line["client"] == "127.0.0.1" for line in readiness)  # no proxy header: the peer


@pytest.mark.gunicorn
def test_real_gunicorn_with_no_trusted_proxy_believes_no_forwarded_header(tmp_path):
    """gunicorn itself trusts X-Forwarded-Proto from 127.0.0.1 unless told not to (gunicorn.conf.py)."""
    from tests.gunicorn_helpers import serve

    env = {"AIREC_RATE_LIMIT": "2/minute", "AIREC_AUTH": "on"}
    with serve(tmp_path, workers=1, env=env) as server:
        forged = [
            login_page(server, **{"X-Forwarded-For": f"203.0.113.{n}", "X-Forwarded-Proto": "https"})
            for n in range(3)
        ]
        assert [answer.status_code for answer in forged] == [200, 200, 429]
        assert "Secure" not in forged[0].headers["Set-Cookie"]
        lines = access_lines_of(server)
    assert [line["client"] for line in lines if line.get("path") == "/login"] == ["127.0.0.1"] * 3
