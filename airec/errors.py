"""JSON errors a person can act on; never a stack trace to a client."""

from __future__ import annotations

import json
import logging
import math
import re
from typing import Any

import orjson
import peewee
from flask import Flask, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from playhouse.pool import MaxConnectionsExceeded
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.routing import IntegerConverter

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


def _error(code: int, message: str):
    """The {code, status, message} answer for errors raised outside flask-smorest's abort()."""
    response = jsonify(code=code, status=HTTP_STATUS_CODES[code], message=message)
    response.status_code = code
    return response


def error_response(code: int, message: str):
    """A JSON error answer in the house format, for handlers outside this module (e.g. rate limits)."""
    return _error(code, message)


def register_error_handlers(app: Flask) -> None:
    """Make every error answer JSON {code, status, message[, errors]}."""

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    def database_error(exc: Exception):
        log.error("database unavailable: %s", exc)
        response = _error(503, "The database is unavailable right now; retry in a few seconds.")
        response.headers["Retry-After"] = "5"
        return response

    @app.errorhandler(MaxConnectionsExceeded)
    def pool_exhausted(exc: MaxConnectionsExceeded):
        log.error("no free database connection within AIREC_DB_POOL_WAIT_SECONDS: %s", exc)
        response = _error(
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
        return _error(400, "A number in the request is out of range.")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        if isinstance(exc, HTTPException):
            return exc
        log.exception("unhandled error")
        return _error(500, "Something went wrong on our side.")


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


#: Deeper JSON than this is refused: no request shape here needs more than 4 levels.
MAX_JSON_DEPTH = 32
#: Integers longer than this (in digits) are refused before Python spends time converting them.
MAX_INT_DIGITS = 19
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJSON(ValueError):
    """A request body we refuse to interpret; the message says why, for a 400 answer."""


def _refuse_constant(name: str) -> Any:
    raise InvalidJSON(f"{name} is not a JSON number.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidJSON(f"The number {text[:20]} is out of range.")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise InvalidJSON(f"The number {text[:20]}... is out of range.")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise InvalidJSON(f"Duplicate key {duplicate!r} in an object.")
    return out


def strict_json_loads(data: str | bytes) -> Any:
    """json.loads that refuses what other parsers would read differently or we cannot store:
    invalid UTF-8, lone surrogates, NaN/Infinity, numbers out of range, duplicate keys, deep nesting."""
    decoded = isinstance(data, bytes)  # then valid UTF-8: no surrogate but from an escape
    if decoded:
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"The body is not valid UTF-8 (byte {exc.start}).") from exc
    try:
        value = json.loads(
            data,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError as exc:
        raise InvalidJSON(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.") from exc
    except InvalidJSON:
        raise
    except ValueError as exc:
        raise InvalidJSON(str(exc)) from exc
    _check_shape(value, strings=not decoded or _SURROGATE_ESCAPE.search(data) is not None)
    return value


#: Decoded UTF-8 holds no surrogates; json.loads makes them only from a \uD800-\uDFFF escape. A body
#: without one has no string to check (most bodies: checking each string was a third of the parse).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _check_shape(value: Any, strings: bool = True) -> None:
    """Depth and (when `strings`) lone surrogates, walked without recursion."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if _LONE_SURROGATE.search(node):
                raise InvalidJSON("A string contains an unpaired surrogate (not valid Unicode).")
            continue
        if not isinstance(node, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise InvalidJSON(f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels.")
        children = node.values() if isinstance(node, dict) else node
        if strings:
            if isinstance(node, dict):
                stack.extend((key, depth) for key in node)
            stack.extend((child, depth + 1) for child in children)
        else:
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))


class BoundedIntConverter(IntegerConverter):
    """<int:...> path segments beyond a 64-bit integer are 404, not an overflow in the database driver."""

    def __init__(self, map, *args, **kwargs):  # noqa: A002 -- werkzeug's signature
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def register_converters(app: Flask, api) -> None:
    """Before any blueprint: bounded integers in URLs, documented as such."""
    from flask_smorest.spec.plugins import integerconverter2paramschema

    app.url_map.converters["int"] = BoundedIntConverter
    api.register_converter(BoundedIntConverter, integerconverter2paramschema)


def document_headers(api) -> None:
    """X-Pagination is JSON text in a header: document a string, or clients expect an object."""
    headers = getattr(api.spec.components, "headers", {})
    if "PAGINATION" in headers:
        headers["PAGINATION"] = {
            "description": "Pagination metadata as a JSON object: total, total_pages, first_page, last_page, "
            "page, previous_page, next_page.",
            "schema": {"type": "string"},
        }


class StrictJSONProvider(DefaultJSONProvider):
    """request.get_json() (used by the compat routes) parses with strict_json_loads; responses are
    written by orjson (a fraction of json.dumps's time), with Flask's own encoder
    for what orjson leaves to it (datetimes as HTTP dates, as before) or refuses (lone surrogates,
    integers over 64 bits)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_json_loads(s)

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        if not kwargs:
            try:
                return orjson.dumps(obj, default=self.default, option=_ORJSON_OPTIONS).decode()
            except TypeError:
                pass
        return super().dumps(obj, **kwargs)

    def response(self, *args: Any, **kwargs: Any):
        """jsonify(): compact UTF-8 JSON and a newline, as Flask writes it out of debug mode."""
        if self._app.debug:
            return super().response(*args, **kwargs)
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=self.default, option=_ORJSON_OPTIONS | orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            return super().response(obj)
        return self._app.response_class(body, mimetype=self.mimetype)


#: Datetimes go to Flask's encoder (HTTP dates, as json.dumps wrote them); dict keys may be non-strings.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def register_input_guards(app: Flask) -> None:
    """Refuse hostile JSON bodies with a 400 before any view (or its parser) sees them, and tell
    browsers never to sniff a response into HTML."""
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    @app.before_request
    def _strict_json_body() -> None:
        if request.method in ("GET", "HEAD", "OPTIONS") or not request.is_json:
            return
        raw = request.get_data(cache=True)  # 413 (JSON) if over MAX_CONTENT_LENGTH
        if not raw.strip():
            return
        try:
            g.json_body = strict_json_loads(raw)  # parsed once: the views' parser reads it from g
        except InvalidJSON as exc:
            from flask_smorest import abort

            abort(400, message=f"Invalid JSON: {exc}")

    @app.after_request
    def _no_sniff(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
