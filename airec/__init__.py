"""airec: a self-hosted neural recommender service."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, request

from airec.config import Settings
from airec.db import SchemaGate, database, init_db
from airec.errors import document_headers, register_converters, register_error_handlers, register_input_guards
from airec.extensions import api
from airec.logs import configure_logging

__version__ = "0.1.0"

log = logging.getLogger("airec")
access_log = logging.getLogger("airec.access")

#: Endpoints that never need the schema: they answer even while the database is unreachable.
ANSWERED_WITHOUT_DATABASE = frozenset(
    {"ops.Health", "api-docs.openapi_json", "api-docs.openapi_swagger_ui", "docs_assets.static"}
)


def create_app(config: Mapping[str, Any] | Settings | None = None) -> Flask:
    """Build the app: settings, logging, database, migrations, API, blueprints, model registry, scheduler."""
    settings = config if isinstance(config, Settings) else Settings.from_env(config)
    configure_logging(settings.log_level, settings.log_json)

    app = Flask(__name__)
    app.config.update(
        AIREC=settings,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        API_TITLE="airec",
        API_VERSION=__version__,
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="/docs/static/",
        API_SPEC_OPTIONS={
            "info": {
                "description": "POST what users did; ask which items complete a set. "
                "Errors are JSON objects with a human-readable `message`."
            }
        },
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    db = init_db(settings.database_url)
    app.extensions["airec_schema"] = SchemaGate(db)  # migrates now, or once the database is back

    api.init_app(app)
    register_converters(app, api)
    register_error_handlers(app)
    _register_blueprints(app)
    _register_request_hooks(app)
    from airec.readcache import init_read_cache

    init_read_cache(app, settings.read_cache_seconds)

    from airec.auth import init_auth

    init_auth(app, api)  # after the request-id hook, so refusals are logged with it
    register_input_guards(app)  # after auth: bodies of unauthenticated requests are never parsed
    document_headers(api)

    from airec.serving.registry import init_registry
    from airec.training.scheduler import start_scheduler

    init_registry(app)
    start_scheduler(app)
    log.info("airec %s ready (database %s)", __version__, _redact(settings.database_url))
    return app


def _register_blueprints(app: Flask) -> None:
    from airec.compat.views import bp as compat_blp
    from airec.ingestion.views import blp as ingestion_blp
    from airec.metrics import init_metrics
    from airec.ops.views import blp as ops_blp
    from airec.registry.views import blp as models_blp
    from airec.serving.views import blp as serving_blp
    from airec.stats.views import blp as stats_blp
    from airec.training.views import blp as training_blp

    for blp in (ops_blp, ingestion_blp, stats_blp, training_blp, serving_blp, models_blp, compat_blp):
        api.register_blueprint(blp)
    init_metrics(app)  # GET /metrics, plain route outside the OpenAPI document

    from airec.ops.views import docs_assets

    app.register_blueprint(docs_assets)

    from airec.console import init_console

    init_console(app)  # the operator pages at /, /models, /training, /try, /keys, /login


def _register_request_hooks(app: Flask) -> None:
    @app.before_request
    def _open() -> None:
        g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex[:16]
        g.started = time.perf_counter()
        if request.endpoint in ANSWERED_WITHOUT_DATABASE:
            return  # liveness and the docs work while the database is down
        # No eager connect: peewee connects on a request's first query, so requests answered from
        # memory (recommendations with auth off) never touch the database. Teardown closes it.
        app.extensions["airec_schema"].require()

    @app.teardown_request
    def _close(_exc) -> None:
        if not database.is_closed():
            database.close()

    @app.after_request
    def _tag(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        _access(response.status_code)
        return response


def _access(status: int) -> None:
    """One access log line and the request metrics, per answered request."""
    from airec.metrics import observe_request

    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    observe_request(status, seconds)
    duration_ms = round(seconds * 1000, 2)
    access_log.info(
        "%s %s %s %.1fms",
        request.method,
        request.path,
        status,
        duration_ms,
        extra={"method": request.method, "path": request.path, "status": status, "duration_ms": duration_ms},
    )


def _redact(url: str) -> str:
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
