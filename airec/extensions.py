"""Extension classes; create_app() makes one of each per app (a second app never rebinds the first's)."""

import functools
import inspect
from collections.abc import Callable
from typing import Any

import flask_smorest
import marshmallow as ma
from flask import g
from flask_smorest import Api
from webargs.flaskparser import FlaskParser

from airec.errors import json_http_error


class AirecApi(Api):
    """flask-smorest's Api with error bodies that say which field was wrong."""

    def handle_http_exception(self, error):
        return json_http_error(error)


class ParsedBodyParser(FlaskParser):
    """Reads the body the input guard already parsed (strictly) instead of parsing it a second time. A
    body its schema checks in one pass never reaches the parser (Blueprint.arguments)."""

    def _raw_load_json(self, req):
        if "json_body" in g:
            return g.json_body
        return super()._raw_load_json(req)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, with the body parsed once per request."""

    ARGUMENTS_PARSER = ParsedBodyParser()

    def arguments(self, schema, *args, **kwargs):
        """As flask-smorest's, with a schema class made an instance once: webargs builds a new
        instance of a class on every request (a twentieth of a recommendation's time). Schemas keep
        no per-call state, so one instance serves every thread."""
        if isinstance(schema, type) and issubclass(schema, ma.Schema):
            schema = schema()
        documented = super().arguments(schema, *args, **kwargs)
        plain = getattr(schema, "plain_load", None)
        if plain is None or kwargs.get("location", "json") != "json" or kwargs.get("validate"):
            return documented
        return lambda view: _plain_body_first(documented(view), view, plain)


def _plain_body_first(parsed: Callable, view: Callable, plain: Callable[[Any], dict | None]) -> Callable:
    """`parsed` (flask-smorest's and webargs' wrappers around `view`), except that a body the schema's
    `plain_load` accepts in one pass goes straight to `view`, as webargs would pass it (appended to the
    positional arguments). Those two wrappers cost ~30 us of a recommendation (webargs' request lookup
    and argument merging, an ensure_sync per call) around a check that costs ~10; any other body takes
    them and gets the same answer or the same error. flask-smorest reads the docs from the wrapper's
    attributes, which functools.wraps copies."""
    if inspect.iscoroutinefunction(view):
        return parsed

    @functools.wraps(parsed)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        body = g.get("json_body", _NO_BODY)
        if body is not _NO_BODY:
            fast = plain(body)
            if fast is not None:
                return view(*args, fast, **kwargs)
        return parsed(*args, **kwargs)

    return wrapper


_NO_BODY = object()
