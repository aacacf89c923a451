"""What the URL map and the OpenAPI document get beyond flask-smorest's defaults: integers in paths
bounded to 64 bits, and X-Pagination documented as the string it is."""

from __future__ import annotations

from flask import Flask
from werkzeug.routing import IntegerConverter


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
