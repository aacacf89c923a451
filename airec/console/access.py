"""Who is looking at the console, and what they may do: exactly what their key may do on the JSON API.

Each console endpoint names the API operation it stands for; its role comes from airec.auth's table
through `required_role`, so the two can never disagree. The API-key hook lets console endpoints
through (they are `public` in airec.auth.ENDPOINT_ROLES); this module is their gate instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app, flash, session

from airec.auth import ADMIN, PUBLIC, required_role
from airec.auth.service import Principal, hash_key, verify
from airec.config import Settings
from airec.console import session_store
from airec.console.session import EXPIRES_FIELD
from airec.console.session_store import SessionState

#: An API operation: (endpoint, method).
Operation = tuple[str, str]
#: console endpoint -> the API operation whose role it needs, or a list of operations any one of which
#: opens it (the catalogue pages: a read key looks at the items, an ingest key, which writes the
#: catalogue, opens them to hide and show items).
MIRRORS: dict[str, Operation | list[Operation]] = {
    "console.overview": ("stats.Stats", "GET"),
    "console.models": ("versions.Versions", "GET"),
    "console.model": ("versions.Version", "GET"),
    "console.activate": ("versions.Activate", "POST"),
    "console.archive": ("versions.Version", "DELETE"),
    "console.unpin": ("versions.Unpin", "POST"),
    "console.training": ("training.Runs", "GET"),
    "console.train": ("training.Training", "POST"),
    "console.run_progress": ("training.Run", "GET"),
    "console.try_it": ("serving.Recommendations", "POST"),
    "console.suggest": ("stats.Items", "GET"),
    "console.items": [("stats.Items", "GET"), ("catalogue.CatalogueItem", "PATCH")],
    "console.item": [("catalogue.CatalogueItem", "GET"), ("catalogue.CatalogueItem", "PATCH")],
    "console.set_visibility": ("catalogue.CatalogueItem", "PATCH"),
    "console.keys": ("auth.Keys", "GET"),
    "console.create_key": ("auth.Keys", "POST"),
    "console.revoke_key": ("auth.Key", "DELETE"),
    "console.audit_log": ("audit.Audit", "GET"),
    "console.delete_user": ("privacy.User", "DELETE"),
    "console.experiments": ("experiments.Experiments", "GET"),
    "console.start_experiment": ("experiments.Experiments", "POST"),
    "console.experiment": ("experiments.ExperimentResults", "GET"),
    "console.stop_experiment": ("experiments.StopExperiment", "POST"),
}
#: The pages in the navigation; each shows only to viewers whose key may use it.
NAV = (
    ("console.overview", "Overview"),
    ("console.models", "Models"),
    ("console.training", "Training"),
    ("console.try_it", "Try it"),
    ("console.items", "Items"),
    ("console.experiments", "Experiments"),
    ("console.keys", "Access"),
    ("console.audit_log", "Audit"),
    ("console.delete_user", "Delete user"),
)
#: Open to anyone: the login form itself, logging out, the stylesheet and script.
OPEN = frozenset({"console.login", "console.logout", "console.static"})
#: The session field holding the server-side session's token (airec.console.session_store), never the key.
SESSION_TOKEN = "session_token"
#: Why a cookie no longer opens the console, for the login form.
ENDED_BECAUSE = {
    SessionState.ENDED: "Your session has ended (signed out, or it expired). Sign in again.",
    SessionState.KEY_REVOKED: "Your session has ended: its key was revoked. Sign in with a current key.",
}


@dataclass(frozen=True)
class Viewer:
    """The signed-in key's name and role; with AIREC_AUTH=off, an anonymous admin."""

    name: str | None
    role: str

    def may(self, role: str) -> bool:
        return role == PUBLIC or Principal(name=self.name or "", role=self.role).may(role)

    def may_any(self, roles: tuple[str, ...]) -> bool:
        return any(self.may(role) for role in roles)


def api_role(api_endpoint: str, method: str, settings: Settings) -> str:
    """The role an API operation needs; LookupError when the API has no rule for it (fail closed)."""
    role = required_role(api_endpoint, method, settings)
    if role is None:  # the API lost that operation: fail closed, as the API does
        raise LookupError(f"{api_endpoint} {method} has no access rule")
    return role


def operations(endpoint: str) -> list[Operation]:
    """The API operations a console endpoint mirrors (any one of them opens it)."""
    mirrored = MIRRORS[endpoint]
    return mirrored if isinstance(mirrored, list) else [mirrored]


def required(endpoint: str, settings: Settings) -> tuple[str, ...]:
    """The roles any one of which opens a console endpoint (those of the API operations it mirrors)."""
    if endpoint in OPEN:
        return (PUBLIC,)
    return tuple(dict.fromkeys(api_role(api, method, settings) for api, method in operations(endpoint)))


def pages_for(viewer: Viewer, settings: Settings) -> list[str]:
    """The navigation's pages this viewer may open, in its order."""
    return [endpoint for endpoint, _ in NAV if viewer.may_any(required(endpoint, settings))]


def current_viewer() -> Viewer | None:
    """The viewer of this request, or None when nobody (or a since-revoked key) is signed in."""
    settings: Settings = current_app.config["AIREC"]
    if not settings.auth:
        return Viewer(name=None, role=ADMIN)
    token = session.get(SESSION_TOKEN)
    if not token:
        return None
    state, principal = session_store.look_up(token)  # every request: sign-out or revocation ends it here
    if principal is None:
        session.clear()
        flash(ENDED_BECAUSE[state], "error")
        return None
    return Viewer(name=principal.name, role=principal.role)


class LoginRefused(Exception):
    """The key cannot open a console session; the message says why, for the login form."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def sign_in(key: str) -> Viewer:
    """Check the key as the API does and start a session on its hash. Raises LoginRefused."""
    principal = verify(key.strip())
    if principal is None:
        raise LoginRefused("That key is not valid: it is mistyped, or it has been revoked.", 401)
    settings: Settings = current_app.config["AIREC"]
    if not pages_for(Viewer(name=principal.name, role=principal.role), settings):
        raise LoginRefused(
            f"The key {principal.name!r} has the {str(principal.role)!r} role, which opens no console "
            "page. Sign in with a read, ingest or admin key.",
            403,
        )
    token, expires_at = session_store.open_session(
        hash_key(key.strip()), dt.timedelta(hours=settings.console_session_hours)
    )
    session.clear()  # a fresh session (and CSRF token) for the new identity
    session[SESSION_TOKEN] = token
    session[EXPIRES_FIELD] = int(expires_at.replace(tzinfo=dt.UTC).timestamp())
    session.permanent = True
    return Viewer(name=principal.name, role=principal.role)


def sign_out() -> None:
    """End the session on the server (every copy of the cookie is refused from now on), then here."""
    token = session.get(SESSION_TOKEN)
    if token:
        session_store.end_session(token)
    session.clear()
