"""Rate limits per API key (Flask-Limiter), off unless AIREC_RATE_LIMIT is set.

One budget per key across the whole API, counted by the key's id; without a key (auth off, public
endpoints, the console's pages) by the client's address: the connection's peer, whatever
X-Forwarded-For a client sends, or behind AIREC_TRUSTED_PROXIES proxies the address they forwarded.
The count lives in AIREC_RATE_LIMIT_STORAGE: `memory` is per process, so with N gunicorn workers a
client may get up to N times the rate; a `redis://` URI makes every worker and host share one count.
Requests refused for a missing or bad key (401) are answered before they are counted. Over the limit:
429 with the usual JSON error body and Retry-After. While the shared storage is unreachable each
process counts in memory: a Redis outage neither takes the API down nor lifts the limit.
"""

from __future__ import annotations

import logging
import re

from flask import Flask, g, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address

from airec.config import Settings, rate_limit_storage_uri, rate_limits
from airec.errors import error_response

log = logging.getLogger(__name__)

#: Probes, metrics and documentation are never limited: a throttled probe takes a healthy worker out
#: of rotation, and the docs are static. Static files are exempt in Flask-Limiter already.
EXEMPT_ENDPOINTS = frozenset(
    {
        "ops.Health",
        "ops.Ready",
        "metrics",
        "api-docs.openapi_json",
        "api-docs.openapi_swagger_ui",
        "docs_assets.static",
    }
)


def client_key() -> str:
    """The API key's id when the request carried a valid one, else the client's address."""
    principal = g.get("principal")
    if principal is not None and principal.key_id is not None:
        return f"key:{principal.key_id}"
    return f"addr:{get_remote_address()}"


def init_rate_limits(app: Flask) -> Limiter | None:
    """Install the limiter after the auth hook (its key function needs g.principal). Off: nothing
    is installed, so no request is ever counted or answered 429 and no limit headers are sent."""
    settings: Settings = app.config["AIREC"]
    limit = settings.rate_limit
    if rate_limits(limit) is None:
        return None

    @app.after_request
    def _retry_after_only_when_refused(response):
        """Flask-Limiter adds Retry-After (seconds to the window's end, rounded down) to every answer
        it counted: keep it only where it means something, and never 0 on a 429. Registered before
        the limiter's own hook, so it runs after it."""
        if response.status_code == 429:
            seconds = response.headers.get("Retry-After", "1")
            response.headers["Retry-After"] = str(max(1, int(seconds) if seconds.isdigit() else 1))
        elif response.status_code != 503:
            response.headers.pop("Retry-After", None)
        return response

    limiter = Limiter(
        client_key,
        app=app,
        application_limits=[limit],
        storage_uri=rate_limit_storage_uri(settings.rate_limit_storage),
        key_prefix=settings.rate_limit_prefix,
        headers_enabled=True,  # X-RateLimit-Limit, -Remaining, -Reset on every counted answer
        swallow_errors=True,  # the storage down (Redis unreachable): log it and serve
        in_memory_fallback_enabled=True,  # ... counting in this process until it is back
    )
    limiter.request_filter(lambda: request.endpoint in EXEMPT_ENDPOINTS)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(exc: RateLimitExceeded):
        log.info("rate limit %s reached by %s", exc.description, client_key())
        message = (
            f"Too many requests: the limit is {exc.description} per API key (per client address "
            "without one). Retry after the number of seconds in the Retry-After header."
        )
        return error_response(429, message)  # Retry-After: the limiter's hook and the one above

    _document(app, limit)
    log.info("rate limit %s per key (storage %s)", limit, settings.rate_limit_storage.split("@")[-1])
    return limiter


_RULE_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _document(app: Flask, limit: str) -> None:
    """A 429 answer (JSON error, Retry-After) on every operation the limit applies to."""
    api = app.extensions["airec_api"]
    api.spec.components.response(
        "TOO_MANY_REQUESTS",
        {
            "description": f"Over the rate limit of this API key ({limit}); retry after Retry-After seconds",
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    )
    refused = {"$ref": "#/components/responses/TOO_MANY_REQUESTS"}
    by_path = {_RULE_ARG.sub(r"{\1}", rule.rule): rule.endpoint for rule in app.url_map.iter_rules()}
    for path, operations in api.spec._paths.items():  # apispec keeps no public accessor for this
        if by_path.get(path) in EXEMPT_ENDPOINTS:
            continue
        for operation in operations.values():
            if isinstance(operation, dict):
                operation.setdefault("responses", {})["429"] = refused
