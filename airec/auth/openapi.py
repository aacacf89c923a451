"""The API keys in the OpenAPI document: the security schemes and, per operation, the role it needs."""

from __future__ import annotations

import re

from flask import Flask

from airec.auth.roles import PUBLIC, required_role
from airec.config import Settings

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
