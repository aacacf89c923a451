"""Which role each endpoint needs: one table, ENDPOINT_ROLES, and the lookups over it.

Every Flask endpoint (request.url_rule.endpoint) must appear in ENDPOINT_ROLES. An endpoint that is
missing is refused when auth is on (fail closed), and tests/test_auth.py walks app.url_map so a new
route without a decision fails the suite. Roles: `ingest` writes interactions, `read` asks for
recommendations and statistics, `admin` trains, manages models and keys, and may do everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from flask import Flask

from airec.config import Settings


class Role(StrEnum):
    """What an endpoint requires, and (all but PUBLIC) what an API key may hold."""

    PUBLIC = "public"  # no key needed; never a key's role
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"  # implies every other role


#: The roles a key can be created with, in the order they are offered.
KEY_ROLES = (Role.INGEST, Role.READ, Role.ADMIN)
#: Short names for the table below (the same members).
PUBLIC, INGEST, READ, ADMIN = Role.PUBLIC, Role.INGEST, Role.READ, Role.ADMIN


@dataclass(frozen=True)
class Configurable:
    """Public when the named setting is true, otherwise `role`."""

    setting: str
    role: Role


DOCS = Configurable("public_docs", READ)

#: endpoint -> role for every method, or {method: role}. HEAD follows GET; OPTIONS is always open.
ENDPOINT_ROLES: dict[str, Role | Configurable | dict[str, Role | Configurable]] = {
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
    "feedback.OnlineStats": READ,
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
    "experiments.Experiments": ADMIN,
    "experiments.ExperimentResults": ADMIN,
    "experiments.StopExperiment": ADMIN,
    "auth.Keys": ADMIN,
    "auth.Key": ADMIN,
    "privacy.User": ADMIN,
    "privacy.UserData": ADMIN,
    "privacy.Item": ADMIN,
    "audit.Audit": ADMIN,
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
            "audit_log",
            "delete_user",
            "experiments",
            "start_experiment",
            "experiment",
            "stop_experiment",
        )
    },
}


def required_role(endpoint: str, method: str, settings: Settings) -> Role | None:
    """The role an (endpoint, method) needs, PUBLIC, or None when the table has no decision."""
    method = "GET" if method == "HEAD" else method.upper()
    entry = ENDPOINT_ROLES.get(endpoint)
    if isinstance(entry, dict):
        entry = entry.get(method)
    if isinstance(entry, Configurable):
        return PUBLIC if getattr(settings, entry.setting) else entry.role
    return entry


def unmapped_endpoints(app: Flask) -> list[tuple[str, str]]:
    """(endpoint, method) pairs of the URL map that ENDPOINT_ROLES has no decision for."""
    settings: Settings = app.config["AIREC"]
    missing = []
    for rule in app.url_map.iter_rules():
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if required_role(rule.endpoint, method, settings) is None:
                missing.append((rule.endpoint, method))
    return missing
