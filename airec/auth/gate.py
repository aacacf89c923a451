"""The before_request hook that enforces ENDPOINT_ROLES: reads the presented key, verifies it, and
refuses (401 without a valid key, 403 without the role) before any view runs."""

from __future__ import annotations

import logging

from flask import current_app, g, request
from flask_smorest import abort

from airec.auth.roles import PUBLIC, required_role
from airec.auth.service import Principal, verify
from airec.config import Settings

log = logging.getLogger(__name__)


def presented_key() -> str | None:
    """`Authorization: Bearer <key>`, else `X-API-Key: <key>` (read from the WSGI environ, as
    request.headers reads them, without building the headers view)."""
    environ = request.environ
    scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return environ.get("HTTP_X_API_KEY", "").strip() or None


def _refuse_unauthenticated(message: str, error: str | None = None) -> None:
    challenge = 'Bearer realm="airec"' + (f', error="{error}"' if error else "")
    abort(401, message=message, headers={"WWW-Authenticate": challenge})


def authorize() -> None:
    """before_request: decide from ENDPOINT_ROLES; sets g.principal for authenticated calls."""
    settings: Settings = current_app.config["AIREC"]
    g.principal = None
    rule = request.url_rule
    if not settings.auth or rule is None or request.method == "OPTIONS":
        return  # auth off, or routing already failed (404/405 answer follows)
    required = required_role(rule.endpoint, request.method, settings)
    if required is None:
        log.error("no access rule for endpoint %s %s: refused", request.method, rule.endpoint)
        abort(403, message="This endpoint has no access rule yet, so it is closed.")
    if required == PUBLIC:
        return
    key = presented_key()
    if key is None:
        _refuse_unauthenticated("Send an API key: Authorization: Bearer <key> (or X-API-Key: <key>).")
    principal: Principal | None = verify(key, current_app.extensions["airec_key_cache"])
    if principal is None:
        _refuse_unauthenticated("The API key is invalid or has been revoked.", "invalid_token")
    g.principal = principal
    if not principal.may(required):
        abort(
            403,
            message=f"This needs a key with the {str(required)!r} role; "
            f"this key has {str(principal.role)!r}.",
        )
