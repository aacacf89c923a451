"""The item catalogue routes: one item by name (names may hold '/'), and bulk upserts."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort
from werkzeug.exceptions import RequestEntityTooLarge

from airec.audit import service as audit
from airec.catalogue import service
from airec.catalogue.schemas import BulkResultSchema, BulkSchema, ItemFieldsSchema, ItemSchema
from airec.errors import error_response
from airec.extensions import Blueprint
from airec.ingestion.service import name_problem

blp = Blueprint(
    "catalogue",
    __name__,
    url_prefix="/api/v1",
    description="The item catalogue: categories, labels and visibility that every answer obeys.",
)


@blp.errorhandler(RequestEntityTooLarge)
def _too_large(_exc):
    limit = current_app.config["AIREC"].max_body_bytes
    return error_response(
        413, f"The body is over AIREC_MAX_BODY_BYTES ({limit} bytes): split the batch into smaller requests."
    )


def _checked_name(item: str) -> str:
    problem = name_problem(item)
    if problem:
        abort(422, message=f"Invalid input. item: {problem}", errors={"item": [problem]})
    return item


def _stored(item: str, write) -> dict:
    try:
        write()
    except service.CatalogueError as exc:
        abort(422, message=f"Invalid input. {exc.field}: {exc.message}", errors={exc.field: [exc.message]})
    audit.record(audit.Action.CATALOGUE_CHANGED, item)
    return service.describe(item)


@blp.route("/items/<path:item>")
class CatalogueItem(MethodView):
    @blp.response(200, ItemSchema)
    @blp.alt_response(404, description="Neither described nor named by any interaction")
    def get(self, item):
        """An item's metadata, interaction count and whether it is recommendable now."""
        found = service.describe(_checked_name(item))
        if found is None:
            abort(404, message=f"No item {item!r}: neither described nor named by any interaction.")
        return found

    @blp.arguments(ItemFieldsSchema)
    @blp.response(200, ItemSchema)
    def put(self, fields, item):
        """Replace an item's metadata: fields not sent take their defaults (visible, no tags)."""
        return _stored(item, lambda: service.replace(_checked_name(item), fields))

    @blp.arguments(ItemFieldsSchema)
    @blp.response(200, ItemSchema)
    def patch(self, fields, item):
        """Change only the fields sent, e.g. `{"hidden": true}` when stock runs out."""
        return _stored(item, lambda: service.update(_checked_name(item), fields))


@blp.route("/items")
class CatalogueBulk(MethodView):
    @blp.arguments(BulkSchema)
    @blp.response(200, BulkResultSchema)
    @blp.alt_response(413, description="Over AIREC_MAX_BODY_BYTES: split the batch")
    def post(self, body):
        """Describe up to 10,000 items at once, each replaced as by PUT, in one transaction.

        A bad entry is a 422 naming its index and field (`items.3.labels`), and nothing is stored.
        """
        result = service.upsert_many(body["items"])
        audit.record(audit.Action.CATALOGUE_CHANGED, f"{len(body['items'])} items")
        return result
