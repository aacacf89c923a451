"""Hostile input: every malformed, oversized or ambiguous body gets a 4xx JSON answer, never a 500,
and nothing is half-stored. Names that look like SQL, HTML or paths come back verbatim, as JSON."""

from __future__ import annotations

import json

import pytest

from airec.strict_json import InvalidJSON, strict_json_loads

EMPTY = {"users": 0, "items": 0, "records": 0, "interactions": 0}
JSON = {"Content-Type": "application/json"}

HOSTILE_BODIES = {
    "invalid utf-8": b'{"items": ["\xff\xfe"]}',
    "overlong utf-8": b'{"items": ["\xc0\xaf"]}',
    "utf-16 body": '{"items": ["a"]}'.encode("utf-16"),
    "utf-8 bom": b'\xef\xbb\xbf{"items": ["a"]}',
    "lone surrogate": b'{"items": ["a\\ud800b"]}',
    "deeply nested array": b"[" * 100000 + b"]" * 100000,
    "deeply nested in a field": b'{"items": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "nested 40 levels": b'{"items": ["a"], "x": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
    "NaN": b'{"items": ["a"], "k": NaN}',
    "Infinity": b'{"items": ["a"], "k": -Infinity}',
    "1e400": b'{"items": ["a"], "k": 1e400}',
    "10**1000": b'{"items": ["a"], "k": 1' + b"0" * 1000 + b"}",
    "10**5000": b'{"items": ["a"], "k": 1' + b"0" * 5000 + b"}",
    "duplicate keys": b'{"items": ["a"], "items": ["b"]}',
    "null body": b"null",
    "null items": b'{"items": null}',
    "null record": b'{"records": [null]}',
    "null item": b'{"items": [null]}',
    "string body": b'"hello"',
    "number body": b"42",
    "truncated": b'{"items": ["a"',
    "control char in name": b'{"items": ["a\\u0000b"]}',
    "newline in name": b'{"items": ["a\\nb"]}',
    "empty name": b'{"items": [""]}',
    "object as name": b'{"items": [{"$gt": ""}]}',
    "trailing garbage": b'{"items": ["a"]} xyz',
}

WRITE_URLS = ["/api/v1/interactions", "/recordInteraction"]
READ_URLS = ["/api/v1/recommendations", "/proposeInteraction"]


def stats(client) -> dict:
    return client.get("/api/v1/stats").get_json()


@pytest.mark.parametrize("url", WRITE_URLS + READ_URLS + ["/api/v1/keys", "/api/v1/evaluation"])
def test_hostile_bodies_get_4xx_json_and_store_nothing(client, url):
    for name, body in HOSTILE_BODIES.items():
        for headers in (JSON, {"Content-Type": "text/plain"}):
            answer = client.post(url, data=body, headers=headers)
            harmless_read = url in READ_URLS and name in ("control char in name", "newline in name")
            if harmless_read and answer.status_code == 200:
                assert answer.is_json  # asking about an item that can never exist is harmless
                continue
            assert 400 <= answer.status_code < 500, (url, name, answer.status_code, answer.get_data()[:200])
            payload = answer.get_json()
            assert payload["code"] == answer.status_code and payload["message"], (url, name)
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert stats(client) == EMPTY


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("invalid utf-8", "UTF-8"),
        ("lone surrogate", "surrogate"),
        ("deeply nested array", "nested"),
        ("nested 40 levels", "nested"),
        ("NaN", "NaN"),
        ("1e400", "range"),
        ("10**1000", "range"),
        ("duplicate keys", "Duplicate key 'items'"),
    ],
)
def test_hostile_json_is_400_with_a_reason(client, name, fragment):
    answer = client.post("/api/v1/interactions", data=HOSTILE_BODIES[name], headers=JSON)
    assert answer.status_code == 400
    assert fragment in answer.get_json()["message"]


def test_strict_parser_accepts_ordinary_json():
    assert strict_json_loads(b'{"a": [1, -2, 3.5, 1e10, true, null, "\\u00e9\\ud83d\\ude00"]}') == {
        "a": [1, -2, 3.5, 1e10, True, None, "\u00e9\U0001f600"]
    }
    assert strict_json_loads("9223372036854775807") == 2**63 - 1
    with pytest.raises(InvalidJSON):
        strict_json_loads("92233720368547758070")


def test_body_over_the_size_limit_is_413_json(settings_overrides):
    from airec.app import create_app

    client = create_app({**settings_overrides, "max_body_bytes": 2000}).test_client()
    big = {"records": [{"user": f"u{i}", "items": ["x" * 50]} for i in range(100)]}
    for url in ("/api/v1/interactions", "/recordInteraction", "/api/v1/recommendations"):
        answer = client.post(url, json=big)
        assert answer.status_code == 413, url
        assert answer.get_json()["code"] == 413
    assert client.post("/api/v1/interactions", json={"items": ["small"]}).status_code == 201


def test_limits_on_batch_items_names_and_k(settings_overrides):
    from airec.app import create_app

    limits = {"max_batch_records": 5, "max_items_per_record": 3, "max_name_length": 10, "max_k": 50}
    client = create_app({**settings_overrides, **limits}).test_client()
    url = "/api/v1/interactions"

    def refused(answer, says: str) -> bool:
        return answer.status_code == 422 and says in answer.get_json()["message"]

    assert refused(client.post(url, json={"records": [{"items": ["a"]}] * 6}), "records: At most 5 records")
    assert refused(client.post(url, json={"items": ["a", "b", "c", "d"]}), "items: At most 3 items")
    assert refused(client.post(url, json={"items": ["x" * 11]}), "items.0: Longer than 10 characters")
    assert refused(client.post(url, json={"user": "u" * 11, "items": ["a"]}), "user: Longer than 10")
    assert refused(
        client.post("/proposeInteraction", json={"items": ["a"], "k": 51}), "k: Must be between 1 and 50"
    )
    assert refused(client.post("/api/v1/recommendations", json={"items": ["a"], "k": 10**6}), "k: ")
    over = client.post("/api/v1/recommendations", json={"items": ["a"], "k": 51})
    assert over.status_code == 422 and "between 1 and 50" in over.get_json()["message"]
    assert client.post("/api/v1/recommendations", json={"items": ["a"], "k": 50}).status_code == 200
    assert refused(client.get("/api/v1/items/a/similar?k=51"), "k: Must be between 1 and 50")
    assert refused(client.post("/api/v1/recommendations", json={"items": ["a"], "k": 0}), "k: ")
    assert stats(client) == EMPTY
    ok = client.post(url, json={"records": [{"items": ["a", "b", "c"]}] * 5})
    assert ok.status_code == 201 and ok.get_json() == {"records": 5, "interactions": 15}


def test_a_bad_record_anywhere_in_a_batch_stores_nothing(client):
    records = [{"user": f"u{i}", "items": ["a", "b"]} for i in range(50)]
    records[37] = {"user": "u37", "items": ["a", "ok\u0007"]}
    answer = client.post("/api/v1/interactions", json={"records": records})
    assert answer.status_code == 422 and "records.37.items.1" in answer.get_json()["message"]
    assert stats(client) == EMPTY


TRICKY_NAMES = [
    "'); DROP TABLE items; --",
    '" OR 1=1 --',
    "Robert'); DELETE FROM interactions WHERE ('1'='1",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "/api/v1/keys",
    "%2e%2e%2f",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "名前 🛒 ünïcödé",
    "\u202eevil",
    " leading and trailing ",
]


def test_tricky_names_are_stored_and_returned_verbatim_as_json(client):
    records = [{"user": name, "items": [name, "plain"]} for name in TRICKY_NAMES]
    answer = client.post("/api/v1/interactions", json={"records": records})
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json() == {"records": len(TRICKY_NAMES), "interactions": 2 * len(TRICKY_NAMES)}

    exported = client.get("/api/v1/interactions?limit=1000")
    assert exported.mimetype == "application/json"
    assert exported.headers["X-Content-Type-Options"] == "nosniff"
    pairs = {(row["user"], row["item"]) for row in exported.get_json()["interactions"]}
    assert pairs == {(name, name) for name in TRICKY_NAMES} | {(name, "plain") for name in TRICKY_NAMES}

    listed = client.get("/listItems")
    assert listed.mimetype == "application/json"
    assert set(listed.get_json()["items"]) == set(TRICKY_NAMES) | {"plain"}
    items = client.get("/api/v1/items?page_size=100").get_json()
    assert {row["item"] for row in items} == set(TRICKY_NAMES) | {"plain"}
    assert stats(client)["items"] == len(TRICKY_NAMES) + 1  # every table still there and intact

    recommended = client.post("/api/v1/recommendations", json={"items": ["plain"], "k": 100})
    assert recommended.status_code == 200 and recommended.mimetype == "application/json"
    assert {row["item"] for row in recommended.get_json()["items"]} <= set(TRICKY_NAMES)


def test_every_answer_says_nosniff(client):
    for answer in (
        client.get("/healthz"),
        client.get("/nowhere"),
        client.get("/openapi.json"),
        client.post("/api/v1/interactions", data=b"\xff", headers=JSON),
    ):
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/nowhere").is_json


def test_unauthenticated_bodies_are_not_parsed(auth_client):
    """Auth runs first: an anonymous caller gets 401, not a parser's opinion of its body."""
    body = HOSTILE_BODIES["deeply nested array"]
    answer = auth_client.post("/api/v1/interactions", data=body, headers=JSON)
    assert answer.status_code == 401


def test_lone_surrogates_are_refused_wherever_they_hide():
    """Strings are checked only when the body has a surrogate escape: every place one can hide counts."""
    from airec.strict_json import InvalidJSON, strict_json_loads

    for text in ('{"a": "\\ud800"}', '{"\\uDC00": 1}', '[[{"k": ["x", "\\uDBFF"]}]]'):
        with pytest.raises(InvalidJSON, match="surrogate"):
            strict_json_loads(text.encode())
        with pytest.raises(InvalidJSON, match="surrogate"):
            strict_json_loads(text)
    assert strict_json_loads(b'{"a": "\\uD83D\\uDE00 caf\\u00e9"}') == {"a": "\U0001f600 caf\u00e9"}
    with pytest.raises(InvalidJSON, match="deeper"):
        strict_json_loads(b"[" * 40 + b"]" * 40)


def _outcome(parse, data: bytes):
    try:
        value = parse(data)
    except InvalidJSON as exc:
        return "refused", str(exc)
    return "read", json.dumps(value, sort_keys=True), repr(value)


def test_the_orjson_path_reads_and_refuses_exactly_what_the_strict_path_does():
    """strict_json_loads_bytes (orjson where its reading is provably the same) against the standard
    library's strict path on documents built to differ: duplicate keys at any depth and keys hidden in
    strings, integers and floats at the 19-digit and 64-bit edges, NaN, infinities, nesting at the limit,
    surrogates, invalid UTF-8, a BOM, control characters, and random ordinary bodies."""
    import random

    from airec.strict_json import MAX_JSON_DEPTH, strict_json_loads_bytes

    edge = [
        b'{"a": 1, "a": 2}',
        b'{"a": {"b": 1, "b": 1}}',
        b'[{"x": 1}, {"x": 2, "y": {"x": 3, "x": 3}}]',
        b'{"a\\":": 1, "b": "\\":\\"", "c": {"d": 1}}',
        b'{"k": "a\\\\", "k2": ["\\"k\\":"]}',
        b"9999999999999999999",
        b"-9999999999999999999",
        b"10000000000000000000",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"[1e19, 9.3e18, -9.3e18, 1e300, 1e-400, -0.0, 0.1e1]",
        b"1e999",
        b"[NaN]",
        b"-Infinity",
        b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH,
        b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
        b'{"a":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH,
        b'{"a":' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1),
        b'"\\ud800"',
        b'["\\uD83D\\uDE00", "\\udc00x"]',
        b'"\xff"',
        b"\xef\xbb\xbf{}",
        b'"a\x01"',
        b"  ",
        b'{"items": ["a", "b"], "k": 3}',
        b'{"a": 1} x',
        b'{"a": true, "b": false, "c": null, "d": []}',
    ]
    rng = random.Random(5)
    words = ["a", "k", 'q"', "\\", ":", "\u00e9", "\\ud83d\\ude00"]
    for _ in range(400):
        n = rng.randint(1, 6)
        keys = [rng.choice(words) + rng.choice(["", "1"]) for _ in range(n)]
        values = ["1", "2.5", "[1, 2]", '"x:"', "{}"]
        parts = [f'"{key}" : {rng.choice(values)}' for key in keys]
        edge.append(("{" + ", ".join(parts) + "}").encode())
    for data in edge:
        assert _outcome(strict_json_loads_bytes, data) == _outcome(strict_json_loads, data), data


def test_the_body_guard_tells_json_as_werkzeug_does():
    """The input guard reads the raw Content-Type instead of request.is_json; both agree on every form
    a client may send (case, parameters, spaces, +json suffixes, near misses)."""
    from werkzeug.wrappers import Request

    from airec.json_provider import is_json_type

    for content_type in [
        "application/json",
        "Application/JSON; charset=utf-8",
        "application/vnd.api+json",
        " application/json ",
        "application/json;",
        'application/json ; q="a;b"',
        "APPLICATION/PROBLEM+JSON",
        "application/+json",
        "text/json",
        "application/jsonx",
        "application/json-patch",
        "multipart/form-data; boundary=x",
        "",
    ]:
        werkzeug = Request({"CONTENT_TYPE": content_type, "REQUEST_METHOD": "POST"}).is_json
        assert is_json_type(content_type) == werkzeug, content_type


def test_a_json_body_with_parameters_in_its_type_is_still_checked(client):
    """A duplicate key is refused whatever form of the JSON type the client names."""
    for content_type in ["application/json; charset=utf-8", "Application/Vnd.Shop+JSON"]:
        answer = client.post(
            "/api/v1/recommendations", data=b'{"items": ["a"], "items": ["b"]}', content_type=content_type
        )
        assert answer.status_code == 400 and "Duplicate key 'items'" in answer.get_json()["message"]


def test_a_body_is_read_once_by_its_declared_length_or_else_as_werkzeug_reads_it(client):
    """The input guard reads a body of declared length straight from the WSGI input: a client that
    sends less than it declared gets a 400 and nothing is stored; a chunked body (no length, the
    server terminates the stream) is read by werkzeug as before; get_data() afterwards gives the same
    bytes (the compat routes read it)."""
    import io

    body = b'{"user": "u1", "items": ["a", "b"]}'
    short = client.post(
        "/api/v1/interactions",
        input_stream=io.BytesIO(body[:-5]),
        headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
    )
    assert short.status_code == 400 and short.get_json()["code"] == 400
    assert client.get("/api/v1/stats").get_json()["interactions"] == 0
    chunked = client.post(
        "/api/v1/interactions",
        input_stream=io.BytesIO(body),
        headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn says of a chunked body
    )
    assert chunked.status_code == 201, chunked.get_json()
    compat = client.post("/recordInteraction", data=body, content_type="application/json")
    assert compat.status_code < 300, compat.get_json()
    assert client.get("/api/v1/stats").get_json()["interactions"] == 4
