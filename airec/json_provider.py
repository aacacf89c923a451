"""The app's JSON in and out: bodies parsed strictly (airec.strict_json) and refused with a 400 before
any view sees them, answers written by orjson."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Flask, g, request
from flask.json.provider import DefaultJSONProvider

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
            g.json_body = strict_json_loads_bytes(raw)  # parsed once: the views' parser reads it from g
        except InvalidJSON as exc:
            from flask_smorest import abort

            abort(400, message=f"Invalid JSON: {exc}")

    @app.after_request
    def _no_sniff(response):
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
