"""Who is looking at the console, and what they may do: exactly what their key may do on the JSON API.

Each console endpoint names the API operation it stands for; its role comes from airec.auth's table
through `required_role`, so the two can never disagree. The API-key hook lets console endpoints
through (they are `public` in airec.auth.ENDPOINT_ROLES); this module is their gate instead.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from flask import current_app, flash, session

from airec.auth import ADMIN, PUBLIC, READ, required_role
from airec.auth.service import Principal, hash_key, verify
from airec.config import Settings
from airec.console import session_store
from airec.console.session import EXPIRES_FIELD
from airec.console.session_store import SessionState

#: console endpoint -> the API operation (endpoint, method) whose role it needs.
MIRRORS: dict[str, tuple[str, str]] = {
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
    "console.items": ("stats.Items", "GET"),
    "console.item": ("catalogue.CatalogueItem", "GET"),
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


def required(endpoint: str, settings: Settings) -> str:
    """The role a console endpoint needs (that of the API operation it mirrors)."""
    if endpoint in OPEN:
        return PUBLIC
    api_endpoint, method = MIRRORS[endpoint]
    role = required_role(api_endpoint, method, settings)
    if role is None:  # the API lost that operation: fail closed, as the API does
        raise LookupError(f"{api_endpoint} {method} has no access rule")
    return role


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
    if not principal.may(READ):
        raise LoginRefused(
            f"The key {principal.name!r} has the {str(principal.role)!r} role, "
            "which can only send interactions. "
            "Sign in with a read or admin key.",
            403,
        )
    settings: Settings = current_app.config["AIREC"]
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
