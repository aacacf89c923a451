"""The console's session cookie: signed with a secret every worker agrees on, CSRF tokens on every form.

The cookie holds the token of a session stored in the database (airec.console.session_store; never the
API key), the session's end, and Flask-WTF's CSRF token. It expires with the session (it is not pushed
back by activity). It is HttpOnly, SameSite=Lax, and Secure whenever the request came over https:
directly, or through a trusted proxy (AIREC_TRUSTED_PROXIES; ProxyFix alone reads X-Forwarded-Proto).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from pathlib import Path

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from airec.config import Settings

SECRET_FILE = ".console-secret-key"
#: The session field holding the server-side session's end (Unix seconds): the cookie expires with it.
EXPIRES_FIELD = "expires"

csrf = CSRFProtect()


def load_or_create_secret(folder: Path) -> str:
    """The secret in `folder`, created on first use. Several workers starting at once agree: each
    writes a private temporary file and links it into place, and whoever links first wins."""
    path = folder / SECRET_FILE
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        candidate = folder / f"{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(candidate, path)
        except FileExistsError:
            pass  # another worker was first: use its secret
        finally:
            candidate.unlink()
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} holds no usable secret: delete it (sessions end) or set AIREC_SECRET_KEY")
    return secret


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, marked Secure when the request is https."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Without a cookie there is nothing to verify: skip building the signer (about 20 us), which
        every JSON API call (bearer keys, no cookie) would otherwise pay."""
        if app.config["SESSION_COOKIE_NAME"] not in request.cookies:
            return self.session_class()
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure

    def get_expiration_time(self, app: Flask, session: SecureCookieSession) -> dt.datetime | None:
        """The session's absolute end, not now + lifetime (which every answer would push back)."""
        expires = session.get(EXPIRES_FIELD)
        if session.permanent and isinstance(expires, int):
            return dt.datetime.fromtimestamp(expires, dt.UTC)
        return super().get_expiration_time(app, session)


def init_session(app: Flask, settings: Settings) -> None:
    """Secret key, cookie flags and CSRF. CSRF is checked by the console's own hook only, so the JSON
    API (bearer keys, no cookies) is untouched."""
    app.secret_key = settings.secret_key or load_or_create_secret(Path(settings.models_dir))
    app.config.update(
        SESSION_COOKIE_NAME="airec_console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=dt.timedelta(hours=settings.console_session_hours),
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session
    )
    app.session_interface = ConsoleSessionInterface()
    csrf.init_app(app)
