"""JSON errors a person can act on; never a stack trace to a client."""

from __future__ import annotations

import logging

import peewee
from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


def _flatten(errors, prefix: str = "") -> list[str]:
    """{'json': {'records': {'0': {'items': ['Missing data']}}}} -> ['records.0.items: Missing data']."""
    out: list[str] = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = key if prefix == "" else f"{prefix}.{key}"
            if prefix == "" and key in {"json", "query", "form", "path", "headers", "files"}:
                name = ""
            out.extend(_flatten(value, name))
    elif isinstance(errors, (list, tuple)):
        if all(isinstance(e, str) for e in errors):
            text = " ".join(errors)
            out.append(f"{prefix}: {text}" if prefix else text)
        else:
            for value in errors:
                out.extend(_flatten(value, prefix))
    else:
        out.append(f"{prefix}: {errors}" if prefix else str(errors))
    return out


def describe_validation(errors) -> str:
    parts = _flatten(errors)
    return "Invalid input. " + "; ".join(parts[:10]) + (" ..." if len(parts) > 10 else "")


def register_error_handlers(app: Flask) -> None:
    """Make every error answer JSON {code, status, message[, errors]}."""

    def unavailable(exc: Exception):
        log.error("database unavailable: %s", exc)
        response = jsonify(
            code=503,
            status="Service Unavailable",
            message="The database is unavailable right now; retry in a few seconds.",
        )
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    def database_error(exc):
        return unavailable(exc)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return exc
        log.exception("unhandled error")
        response = jsonify(
            code=500, status="Internal Server Error", message="Something went wrong on our side."
        )
        response.status_code = 500
        return response


def json_http_error(exc: HTTPException):
    """flask-smorest's handler, with a readable message that names the failing fields."""
    payload = {"code": exc.code, "status": exc.name}
    data = getattr(exc, "data", None) or {}
    if "messages" in data:
        payload["errors"] = data["messages"]
        payload["message"] = describe_validation(data["messages"])
    if "message" in data:
        payload["message"] = data["message"]
    if "message" not in payload:
        payload["message"] = exc.description or exc.name
    if "errors" in data and "errors" not in payload:
        payload["errors"] = data["errors"]
    response = jsonify(payload)
    response.status_code = exc.code or 500
    for key, value in (data.get("headers") or {}).items():
        response.headers[key] = value
    return response
