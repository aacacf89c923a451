"""The house format of an error answer: JSON {code, status, message[, errors]}, with a message that
names the failing fields."""

from __future__ import annotations

from flask import jsonify
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES


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
    """One sentence naming each failing field (the first ten), from marshmallow's nested messages."""
    parts = _flatten(errors)
    return "Invalid input. " + "; ".join(parts[:10]) + (" ..." if len(parts) > 10 else "")


def error_response(code: int, message: str):
    """The {code, status, message} answer for errors raised outside flask-smorest's abort() (the
    handlers, rate limits)."""
    response = jsonify(code=code, status=HTTP_STATUS_CODES[code], message=message)
    response.status_code = code
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
    for key, value in data.items():  # extra context passed to abort(), e.g. the run holding a lock
        if key not in ("messages", "message", "errors", "headers", "exc", "schema") and key not in payload:
            payload[key] = value
    response = jsonify(payload)
    response.status_code = exc.code or 500
    for key, value in exc.get_headers():  # e.g. Allow on 405, WWW-Authenticate on 401
        if key.lower() != "content-type":
            response.headers[key] = value
    for key, value in (data.get("headers") or {}).items():
        response.headers[key] = value
    return response
