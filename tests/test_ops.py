"""Probes, the OpenAPI document and the offline Swagger UI."""

from __future__ import annotations

import re

from tests.synthetic import ingest, planted, train

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_says_whether_a_model_is_loaded(client):
    before = client.get("/readyz")
    assert before.status_code == 200
    assert before.get_json()["database"] == "ok"
    assert before.get_json()["model_loaded"] is False
    assert before.get_json()["model_version"] is None

    ingest(client, planted(units=40)[0])
    run = train(client)
    after = client.get("/readyz").get_json()
    assert after["model_loaded"] is True
    assert after["model_version"] == run["model_version"]


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _has_example(spec: dict, media: dict) -> bool:
    """An example on the media type, or a schema whose every field carries one (recursively)."""
    return "example" in media or "examples" in media or _documented(spec, media.get("schema", {}))


def _documented(spec: dict, schema: dict) -> bool:
    schema = _resolve(spec, schema)
    if "example" in schema:
        return True
    if schema.get("type") == "array":
        return _documented(spec, schema.get("items", {}))
    props = schema.get("properties") or {}
    missing = [name for name, prop in props.items() if not _documented(spec, prop)]
    return bool(props) and not missing


def test_openapi_lists_every_api_route_with_examples(app, client):
    spec = client.get("/openapi.json").get_json()
    routes = {
        re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.rule.startswith("/api/v1/") or rule.endpoint.startswith("compat.")
    }
    assert routes, "no /api/v1 routes registered"
    compat = {"/recordInteraction", "/listUserCount", "/listItemCount", "/listItems", "/proposeInteraction"}
    assert compat <= routes
    assert routes <= set(spec["paths"]), routes - set(spec["paths"])
    problems = []
    for path in sorted(routes):
        for method, operation in spec["paths"][path].items():
            if method not in HTTP_METHODS:
                continue  # path-level "parameters"
            where = f"{method.upper()} {path}"
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None and not _has_example(spec, body):
                problems.append(f"{where}: request body without examples")
            success = [code for code in operation["responses"] if code.startswith("2")]
            if not success:
                problems.append(f"{where}: no success response documented")
            for code in success:
                media = operation["responses"][code].get("content", {}).get("application/json")
                if code != "204" and (media is None or not _has_example(spec, media)):
                    problems.append(f"{where} {code}: response without examples")
    assert not problems, "\n".join(problems)


def test_docs_page_uses_local_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "/docs/static/" in html
    assert "unpkg.com" not in html and "cdn.jsdelivr" not in html
    asset = re.search(r"/docs/static/([\w.-]+\.js)", html)
    assert asset, html[:500]
    served = client.get(f"/docs/static/{asset.group(1)}")
    assert served.status_code == 200
    assert len(served.get_data()) > 1000
