"""Sign in, sign out, the Access (keys) page, and the hooks every console request passes through."""

from __future__ import annotations

from urllib.parse import urlsplit

import peewee
from flask import abort as flask_abort
from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from airec.audit import service as audit
from airec.auth import service as auth_service
from airec.auth.roles import Role
from airec.auth.schemas import KeyCreateSchema
from airec.console.access import (
    NAV,
    OPEN,
    LoginRefused,
    Viewer,
    current_viewer,
    pages_for,
    required,
    sign_in,
    sign_out,
)
from airec.console.session import csrf
from airec.console.views import bp, may
from airec.errors import describe_validation

#: Everything a page loads comes from airec itself; no inline script or style, no framing.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


@bp.before_request
def gate():
    """CSRF on every POST, then: signed in (else the login page), then the API's role (else 403)."""
    if request.endpoint == "console.static":
        return None
    csrf.protect()  # only POST/PUT/PATCH/DELETE are checked
    g.viewer = current_viewer()
    if request.endpoint in OPEN:
        return None
    if g.viewer is None:
        target = request.full_path.rstrip("?") if request.method == "GET" else None
        return redirect(url_for("console.login", next=target), 303)
    roles = required(request.endpoint, current_app.config["AIREC"])
    if not g.viewer.may_any(roles):
        landing = _landing(g.viewer)
        if request.endpoint == "console.overview" and request.method == "GET" and landing != request.path:
            return redirect(landing, 303)  # e.g. an ingest key: its console is the Items page
        needed = " or ".join(repr(str(role)) for role in roles)
        flask_abort(
            403,
            description=f"This needs a key with the {needed} role; you signed in with a "
            f"{str(g.viewer.role)!r} key.",
        )
    return None


def _landing(viewer: Viewer) -> str:
    """The first page of the navigation this viewer may open (the overview for read and admin keys)."""
    pages = pages_for(viewer, current_app.config["AIREC"])
    return url_for(pages[0] if pages else "console.overview")


@bp.after_request
def security_headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"  # pages show data and, once, a new key
    return response


@bp.app_context_processor
def page_context() -> dict:
    """The navigation and the viewer, for the base template."""
    if not request.blueprint == "console":
        return {}
    viewer = g.get("viewer")
    nav = [
        {"endpoint": endpoint, "label": label, "current": request.endpoint == endpoint}
        for endpoint, label in NAV
        if viewer is not None and may(endpoint)
    ]
    return {"nav": nav, "viewer": viewer, "auth_on": current_app.config["AIREC"].auth}


ERROR_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    422: "Cannot do that",
    500: "Server error",
    503: "Unavailable",
}


def error_page(code: int, message: str):
    title = ERROR_TITLES.get(code, "Error")
    return render_template(
        "console/error.html", code=code, title=title, message=message, link=g.get("error_link")
    ), code


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    if exc.code is None or exc.code < 400:
        return exc
    if isinstance(exc, CSRFError):
        return error_page(
            400, "This form's security token is missing or no longer valid. Reload the page and try again."
        )
    return error_page(exc.code, exc.description or exc.name)


@bp.errorhandler(peewee.OperationalError)
@bp.errorhandler(peewee.InterfaceError)
def database_error(exc: Exception):
    current_app.logger.error("console: database unavailable: %s", exc)
    return error_page(503, "The database is unavailable right now; retry in a few seconds.")


@bp.errorhandler(Exception)
def unexpected(exc: Exception):
    current_app.logger.exception("console: unhandled error")
    return error_page(500, "Something went wrong on our side; the server log has the details.")


def _safe_next(target: str | None, viewer: Viewer | None) -> str:
    """Only a path on this site (never another host) after signing in; else the viewer's first page."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return _landing(viewer) if viewer is not None else url_for("console.overview")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The sign-in form: an API key, checked as the API checks it; the session keeps only its hash."""
    next_page = request.values.get("next")
    if not current_app.config["AIREC"].auth or g.viewer is not None:
        return redirect(_safe_next(next_page, g.viewer), 303)
    if request.method == "POST":
        try:
            viewer = sign_in(request.form.get("api_key", ""))
        except LoginRefused as exc:
            return render_template("console/login.html", error=str(exc), next=next_page), exc.status
        return redirect(_safe_next(next_page, viewer), 303)
    return render_template("console/login.html", error=None, next=next_page)


@bp.post("/logout")
def logout():
    sign_out()
    if not current_app.config["AIREC"].auth:
        return redirect(url_for("console.overview"), 303)
    flash("You are signed out.")
    return redirect(url_for("console.login"), 303)


def _keys_page(status: int = 200, **extra):
    rows = [auth_service.describe(row) for row in auth_service.list_keys()]
    return render_template(
        "console/keys.html",
        keys=rows,
        roles=auth_service.ROLES,
        default_role=Role.READ,
        may_create=may("console.create_key"),
        may_revoke=may("console.revoke_key"),
        **{"error": None, "form": {}, **extra},
    ), status


@bp.get("/keys")
def keys():
    """Every key (never the key itself); create and revoke."""
    return _keys_page()


@bp.post("/keys")
def create_key():
    """Create a key and show it this once (as POST /api/v1/keys)."""
    form = {"name": request.form.get("name", "").strip(), "role": request.form.get("role", "")}
    try:
        body = KeyCreateSchema().load(form)
        row, key = auth_service.create_key(name=body["name"], role=body["role"])
    except ValidationError as exc:
        return _keys_page(422, error=describe_validation(exc.messages), form=form)
    except auth_service.KeyProblem as exc:
        return _keys_page(exc.status, error=str(exc), form=form)
    audit.record(audit.Action.KEY_CREATED, row.name, details={"role": row.role})
    return render_template("console/key_created.html", key=key, row=auth_service.describe(row)), 201


@bp.route("/keys/<string:name>/revoke", methods=["GET", "POST"])
def revoke_key(name: str):
    """GET: the confirmation. POST: revoke at once (as DELETE /api/v1/keys/<name>)."""
    if not any(row.name == name for row in auth_service.list_keys()):
        flask_abort(404, description=f"No key named {name!r}.")
    own = g.viewer.name == name
    if request.method == "GET":
        return render_template("console/confirm_revoke.html", name=name, own=own)
    try:
        auth_service.revoke_key(name)
    except auth_service.KeyProblem as exc:
        flask_abort(exc.status, description=str(exc))
    audit.record(audit.Action.KEY_REVOKED, name)
    flash(f"Key {name!r} is revoked: requests with it are refused from now on.")
    return redirect(url_for("console.keys"), 303)
