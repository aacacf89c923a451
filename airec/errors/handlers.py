"""Which exceptions become which JSON answer, each logged; never a stack trace to a client."""

from __future__ import annotations

import logging

import peewee
from flask import Flask
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException

from airec.errors.bodies import error_response

log = logging.getLogger(__name__)


def register_error_handlers(app: Flask) -> None:
    """Make every error answer JSON {code, status, message[, errors]}."""

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    def database_error(exc: Exception):
        log.error("database unavailable: %s", exc)
        response = error_response(503, "The database is unavailable right now; retry in a few seconds.")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(MaxConnectionsExceeded)
    def pool_exhausted(exc: MaxConnectionsExceeded):
        log.error("no free database connection within AIREC_DB_POOL_WAIT_SECONDS: %s", exc)
        response = error_response(
            503,
            "Every database connection is busy right now; retry in a few seconds "
            "(the operator can raise AIREC_DB_POOL_SIZE).",
        )
        response.headers["Retry-After"] = "2"
        return response

    @app.errorhandler(OverflowError)
    def out_of_range(exc: OverflowError):
        """A client's number too large for the database (e.g. ?page=10**24): its fault, not ours."""
        log.warning("number out of range: %s", exc)
        return error_response(400, "A number in the request is out of range.")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return exc
        log.exception("unhandled error")
        return error_response(500, "Something went wrong on our side.")
