"""The application factory: `create_app(config)` builds one self-contained airec app.

Each app owns its database binding, its served model and its threads (airec.scope), so a second app in
the same process (tests, a second mount) leaves the first one working. Background threads (the model
poller and the scheduler) start with `start_background`, which gunicorn calls in each worker after the
fork: with `--preload` the master builds the app and loads the model once, and no thread crosses a fork.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, request
from werkzeug.middleware.proxy_fix import ProxyFix

from airec import __version__, scope
from airec.config import Settings
from airec.db import SchemaGate, database, init_db
from airec.errors import register_error_handlers
from airec.extensions import AirecApi
from airec.json_provider import register_input_guards
from airec.logs import configure_logging
from airec.openapi import document_headers, register_converters

log = logging.getLogger("airec")
access_log = logging.getLogger("airec.access")

#: Endpoints that never need the schema: they answer even while the database is unreachable.
ANSWERED_WITHOUT_DATABASE = frozenset(
    {"ops.Health", "api-docs.openapi_json", "api-docs.openapi_swagger_ui", "docs_assets.static"}
)


def create_app(config: Mapping[str, Any] | Settings | None = None, *, start_threads: bool = True) -> Flask:
    """Build the app: settings, logging, database, migrations, API, blueprints, served model and (unless
    `start_threads` is false, as under gunicorn, which starts them after the fork) its threads."""
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

    _trust_proxies(app, settings.trusted_proxies)
    db = init_db(settings.database_url, **settings.pool)
    app_scope = scope.AppScope(database=db)
    app.extensions["airec_scope"] = app_scope
    with scope.entered(app_scope):
        _build(app, settings, db, app_scope)
    if start_threads:
        start_background(app)
    log.info("airec %s ready (database %s)", __version__, _redact(settings.database_url))
    return app


def _trust_proxies(app: Flask, hops: int) -> None:
    """ProxyFix is the only reader of forwarded headers: behind `hops` proxies the client's address (rate
    limits, access log) and scheme (the console's Secure cookie) come from the last `hops` entries of
    X-Forwarded-For / X-Forwarded-Proto; with 0 those headers are ignored, as a client could forge them."""
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0)


def _build(app: Flask, settings: Settings, db, app_scope: scope.AppScope) -> None:
    app.extensions["airec_schema"] = SchemaGate(db)  # migrates now, or once the database is back

    api = AirecApi()  # one per app: each app documents its own routes and settings
    app.extensions["airec_api"] = api
    api.init_app(app)
    register_converters(app, api)
    register_error_handlers(app)
    _register_blueprints(app, api)
    _register_request_hooks(app)

    from airec.auth import init_auth

    init_auth(app, api)  # after the request-id hook, so refusals are logged with it
    from airec.ratelimit import init_rate_limits

    init_rate_limits(app)  # after auth (it counts per key), before any body is parsed
    register_input_guards(app)  # after auth: bodies of unauthenticated requests are never parsed
    document_headers(api)

    from airec.readcache import init_read_cache
    from airec.serving.served import init_served_model

    init_read_cache(app, settings.read_cache_seconds)
    from airec.feedback.service import make_queue

    app_scope.impressions = make_queue(settings)

    init_served_model(app, app_scope)


def start_background(app: Flask) -> None:
    """Start this app's model poller, scheduler and housekeeping in this process, once (a forked worker
    starts its own: threads do not survive a fork)."""
    from airec.privacy.housekeeping import start_housekeeping
    from airec.training.scheduler import start_scheduler

    app_scope: scope.AppScope = app.extensions["airec_scope"]
    pid = os.getpid()
    if app.extensions.get("airec_threads_pid") == pid:
        return
    app.extensions["airec_threads_pid"] = pid
    settings: Settings = app.config["AIREC"]
    app_scope.stop = threading.Event()
    with scope.entered(app_scope):
        if settings.model_poll_seconds > 0:
            app_scope.served.start_polling(settings.model_poll_seconds)
        scheduler = start_scheduler(app, app_scope.stop)
        housekeeping = start_housekeeping(app, app_scope.stop)
        writer = app_scope.impressions.start() if app_scope.impressions is not None else None
    threads = (app_scope.served._thread, scheduler, housekeeping, writer)
    app_scope.threads = [t for t in threads if t is not None]
    log.info("airec worker %d started: %s", pid, ", ".join(t.name for t in app_scope.threads) or "no threads")


def stop_background(app: Flask) -> None:
    """Stop this app's poller and scheduler and flush its queued impressions (tests, gunicorn's
    worker_exit, or an embedding host shutting an app down)."""
    app_scope: scope.AppScope = app.extensions["airec_scope"]
    app_scope.stop.set()
    app_scope.served.stop_polling()
    if app_scope.impressions is not None:
        with scope.entered(app_scope):
            app_scope.impressions.stop()
    app.extensions.pop("airec_threads_pid", None)


def _register_blueprints(app: Flask, api: AirecApi) -> None:
    from airec.audit.views import blp as audit_blp
    from airec.catalogue.views import blp as catalogue_blp
    from airec.compat.views import bp as compat_blp
    from airec.experiments.views import blp as experiments_blp
    from airec.feedback.views import blp as feedback_blp
    from airec.ingestion.views import blp as ingestion_blp
    from airec.ops.views import blp as ops_blp
    from airec.privacy.views import blp as privacy_blp
    from airec.prometheus import init_metrics
    from airec.serving.views import blp as serving_blp
    from airec.stats.views import blp as stats_blp
    from airec.training.views import blp as training_blp
    from airec.versions.views import blp as models_blp

    blueprints = (
        ops_blp,
        ingestion_blp,
        stats_blp,
        feedback_blp,
        catalogue_blp,
        training_blp,
        serving_blp,
        models_blp,
        experiments_blp,
        compat_blp,
        privacy_blp,
        audit_blp,
    )
    for blp in blueprints:
        api.register_blueprint(blp)
    init_metrics(app)  # GET /metrics, plain route outside the OpenAPI document

    from airec.ops.views import docs_assets

    app.register_blueprint(docs_assets)

    from airec.console import init_console

    init_console(app)  # the operator pages at /, /models, /training, /try, /keys, /login


def _register_request_hooks(app: Flask) -> None:
    app_scope = app.extensions["airec_scope"]

    @app.before_request
    def _open() -> None:
        g.airec_scope_token = scope.enter(app_scope)  # this app's database and model, whatever others bound
        if app.extensions.get("airec_threads_pid") != os.getpid():
            start_background(app)  # a server that forked without gunicorn's hook
        g.request_id = request.headers.get("X-Request-ID") or uuid.uuid4().hex[:16]
        g.started = time.perf_counter()
        if request.endpoint in ANSWERED_WITHOUT_DATABASE:
            return  # liveness and the docs work while the database is down
        # No eager connect: peewee connects on a request's first query, so requests answered from
        # memory (recommendations with auth off) never touch the database. Teardown hands the
        # connection back to the pool (AIREC_DB_POOL_SIZE) for the next request.
        app.extensions["airec_schema"].require()

    @app.teardown_request
    def _close(_exc) -> None:
        if not database.is_closed():
            database.close()
        token = g.pop("airec_scope_token", None)
        if token is not None:
            try:
                scope.leave(token)
            except ValueError:  # torn down in another context than it was opened in
                pass

    @app.after_request
    def _tag(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        _access(response.status_code)
        return response


def _access(status: int) -> None:
    """One access log line and the request metrics, per answered request."""
    from airec.prometheus import observe_request

    seconds = time.perf_counter() - g.get("started", time.perf_counter())
    observe_request(status, seconds)
    duration_ms = round(seconds * 1000, 2)
    client = request.remote_addr or "-"  # the peer, or with AIREC_TRUSTED_PROXIES the forwarded client
    access_log.info(
        "%s %s %s %s %.1fms",
        client,
        request.method,
        request.path,
        status,
        duration_ms,
        extra={
            "client": client,
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": duration_ms,
        },
    )


def _redact(url: str) -> str:
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
