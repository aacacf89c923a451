"""Access control: one table says which role each endpoint needs; one before_request hook enforces it.

Every Flask endpoint (request.url_rule.endpoint) must appear in ENDPOINT_ROLES. An endpoint that is
missing is refused when auth is on (fail closed), and tests/test_auth.py walks app.url_map so a new
route without a decision fails the suite. Roles: `ingest` writes interactions, `read` asks for
recommendations and statistics, `admin` trains, manages models and keys, and may do everything.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from flask import Flask, current_app, g, request
from flask_smorest import abort

from airec.auth.cache import KeyCache
from airec.auth.service import Principal, verify
from airec.config import Settings

log = logging.getLogger(__name__)

PUBLIC = "public"
INGEST = "ingest"
READ = "read"
ADMIN = "admin"


@dataclass(frozen=True)
class Configurable:
    """Public when the named setting is true, otherwise `role`."""

    setting: str
    role: str


DOCS = Configurable("public_docs", READ)

#: endpoint -> role for every method, or {method: role}. HEAD follows GET; OPTIONS is always open.
ENDPOINT_ROLES: dict[str, str | Configurable | dict[str, str | Configurable]] = {
    "ops.Health": PUBLIC,
    "ops.Ready": Configurable("public_readyz", READ),
    "metrics": Configurable("public_metrics", READ),
    "api-docs.openapi_json": DOCS,
    "api-docs.openapi_swagger_ui": DOCS,
    "docs_assets.static": DOCS,
    "static": PUBLIC,
    "ingestion.Interactions": {"POST": INGEST, "GET": READ},
    "stats.Stats": READ,
    "stats.Daily": READ,
    "stats.Items": READ,
    "catalogue.CatalogueItem": {"GET": READ, "PUT": INGEST, "PATCH": INGEST},
    "catalogue.CatalogueBulk": INGEST,
    "serving.Recommendations": READ,
    "serving.UserRecommendations": READ,
    "serving.SimilarItems": READ,
    "versions.Versions": ADMIN,
    "versions.Version": ADMIN,
    "versions.Activate": ADMIN,
    "versions.Unpin": ADMIN,
    "training.Training": ADMIN,
    "training.Runs": ADMIN,
    "training.Run": ADMIN,
    "training.Evaluation": ADMIN,
    "auth.Keys": ADMIN,
    "auth.Key": ADMIN,
    "compat.record_interaction": INGEST,
    "compat.propose_interaction": READ,
    "compat.list_user_count": READ,
    "compat.list_item_count": READ,
    "compat.list_items": READ,
    # The console's pages sign in with a session, not a key header: the key hook lets them through and
    # airec/console/access.py applies to each the role of the API operation it stands for.
    **{
        f"console.{name}": PUBLIC
        for name in (
            "overview",
            "login",
            "logout",
            "static",
            "models",
            "model",
            "activate",
            "archive",
            "unpin",
            "training",
            "train",
            "run_progress",
            "try_it",
            "suggest",
            "items",
            "item",
            "set_visibility",
            "keys",
            "create_key",
            "revoke_key",
        )
    },
}


def required_role(endpoint: str, method: str, settings: Settings) -> str | None:
    """The role an (endpoint, method) needs, PUBLIC, or None when the table has no decision."""
    method = "GET" if method == "HEAD" else method.upper()
    entry = ENDPOINT_ROLES.get(endpoint)
    if isinstance(entry, dict):
        entry = entry.get(method)
    if isinstance(entry, Configurable):
        return PUBLIC if getattr(settings, entry.setting) else entry.role
    return entry


def presented_key() -> str | None:
    """`Authorization: Bearer <key>`, else `X-API-Key: <key>`."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-API-Key", "").strip() or None


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
        abort(403, message=f"This needs a key with the {required!r} role; this key has {principal.role!r}.")


_RULE_ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")

SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer airec_..."},
    "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}


def document_security(app: Flask, api) -> None:
    """Declare the schemes (the docs page gets an Authorize button) and each operation's needs."""
    settings: Settings = app.config["AIREC"]
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    by_path = {_RULE_ARG.sub(r"{\1}", rule.rule): rule.endpoint for rule in app.url_map.iter_rules()}
    for path, operations in api.spec._paths.items():  # apispec keeps no public accessor for this
        endpoint = by_path.get(path)
        for method, operation in operations.items():
            if endpoint is None or not isinstance(operation, dict):
                continue
            role = required_role(endpoint, method, settings)
            if role == PUBLIC or not settings.auth:
                operation["security"] = []
                continue
            operation["security"] = [{name: []} for name in SECURITY_SCHEMES]
            operation.setdefault("responses", {})
            operation["responses"].setdefault("401", {"$ref": "#/components/responses/DEFAULT_ERROR"})
            operation["responses"].setdefault("403", {"$ref": "#/components/responses/DEFAULT_ERROR"})
            if role:
                operation["description"] = (operation.get("description") or "") + f"\n\nRole: `{role}`."


def unmapped_endpoints(app: Flask) -> list[tuple[str, str]]:
    """(endpoint, method) pairs of the URL map that ENDPOINT_ROLES has no decision for."""
    settings: Settings = app.config["AIREC"]
    missing = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if required_role(rule.endpoint, method, settings) is None:
                missing.append((rule.endpoint, method))
    return missing


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
            "endpoint %s %s has no access rule in airec.auth.ENDPOINT_ROLES; it is refused", method, endpoint
        )
