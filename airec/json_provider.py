"""The app's JSON in and out: bodies parsed strictly (airec.strict_json) and refused with a 400 before
any view sees them, answers written by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, Request, g, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge

from airec.strict_json import InvalidJSON, strict_json_loads, strict_json_loads_bytes


class StrictJSONProvider(DefaultJSONProvider):
    """request.get_json() (used by the compat routes) parses with strict_json_loads; responses are
    written by orjson (a fraction of json.dumps's time), with Flask's own encoder
    for what orjson leaves to it (datetimes as HTTP dates, as before) or refuses (lone surrogates,
    integers over 64 bits)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return strict_json_loads_bytes(s) if isinstance(s, bytes) else strict_json_loads(s)

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


class BodyRequest(Request):
    """Flask's request, whose body is read once by `read_body`: with a declared Content-Length (what
    every client of the API sends) straight from the WSGI input, not through werkzeug's per-request
    stream wrappers (a twentieth of a recommendation). get_data() returns the same bytes after."""

    _body: bytes | None = None

    def read_body(self) -> bytes:
        """The whole body; 413 over MAX_CONTENT_LENGTH, 400 if the client sent less than it declared.
        Without a declared length (chunked) werkzeug's get_data reads it, as before."""
        if self._body is None:
            self._body = self._declared_body()
        return self._body

    def _declared_body(self) -> bytes:
        environ = self.environ
        declared = environ.get("CONTENT_LENGTH", "")
        if not declared.isdigit() or "HTTP_TRANSFER_ENCODING" in environ:
            return super().get_data(cache=True)
        length, limit = int(declared), self.max_content_length
        if limit is not None and length > limit:
            raise RequestEntityTooLarge()
        data = environ["wsgi.input"].read(length) if length else b""
        if len(data) != length:
            raise ClientDisconnected()
        return data

    def get_data(self, cache: bool = True, as_text: bool = False, parse_form_data: bool = False):  # type: ignore[override]
        if self._body is None:
            return super().get_data(cache=cache, as_text=as_text, parse_form_data=parse_form_data)
        return self._body.decode(errors="replace") if as_text else self._body


def is_json_type(content_type: str) -> bool:
    """request.is_json from the raw Content-Type, without werkzeug's full header parse (a few us of
    every request with a body): application/json or application/*+json, parameters ignored."""
    mimetype = content_type.partition(";")[0].strip().lower()
    if mimetype == "application/json":
        return True
    return mimetype.startswith("application/") and mimetype.endswith("+json")


def register_input_guards(app: Flask) -> None:
    """Refuse hostile JSON bodies with a 400 before any view (or its parser) sees them, and tell
    browsers never to sniff a response into HTML."""
    app.request_class = BodyRequest
    app.json = StrictJSONProvider(app)
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    @app.before_request
    def _strict_json_body() -> None:
        environ = request.environ
        if environ.get("REQUEST_METHOD", "GET").upper() in ("GET", "HEAD", "OPTIONS"):
            return
        if not is_json_type(environ.get("CONTENT_TYPE", "")):
            return
        raw = request.read_body()  # 413 (JSON) if over MAX_CONTENT_LENGTH
        if not raw or raw.isspace():
            return
        try:
            g.json_body = strict_json_loads_bytes(raw)  # parsed once: the views' parser reads it from g
        except InvalidJSON as exc:
            from flask_smorest import abort

            abort(400, message=f"Invalid JSON: {exc}")

    @app.after_request
    def _no_sniff(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
