"""Put access control on an app: the keys blueprint, the key cache, the hook and its documentation."""

from __future__ import annotations

import logging

from flask import Flask

from airec.auth.cache import KeyCache
from airec.auth.gate import authorize
from airec.auth.openapi import document_security
from airec.auth.roles import unmapped_endpoints
from airec.config import Settings

log = logging.getLogger(__name__)


def init_auth(app: Flask, api) -> None:
    """Install the hook (after the per-request database connection opens) and document it."""
    from airec.auth.views import blp

    api.register_blueprint(blp)
    settings: Settings = app.config["AIREC"]
    app.extensions["airec_key_cache"] = KeyCache(settings.key_cache_seconds)
    app.before_request(authorize)
    document_security(app, api)
    if not settings.auth:
        log.warning("AUTHENTICATION IS OFF (AIREC_AUTH=off): every endpoint is open to anyone who connects")
        return
    for endpoint, method in unmapped_endpoints(app):
        log.error(
            "endpoint %s %s has no access rule in airec.auth.roles.ENDPOINT_ROLES; it is refused",
            method,
            endpoint,
        )
