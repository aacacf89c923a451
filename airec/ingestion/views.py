"""POST what users did; GET it back in insertion order (the export lives on the same URL)."""

from __future__ import annotations

import logging

from flask import current_app, g, request
from flask.views import MethodView
from flask_smorest import abort

from airec.extensions import Blueprint
from airec.feedback.service import attribute
from airec.ingestion.schemas import INGEST_EXAMPLES, IngestResultSchema, IngestSchema
from airec.ingestion.service import IngestError, ingest_records
from airec.prometheus import observe_ingest
from airec.stats import service as stats_service
from airec.stats.schemas import ExportQuerySchema, ExportSchema

log = logging.getLogger(__name__)

blp = Blueprint(
    "ingestion", __name__, url_prefix="/api/v1", description="Record interactions and export them."
)


@blp.before_request
def _require_json_object() -> None:
    """Say plainly when the body is not JSON at all, instead of reporting a missing field."""
    if request.method != "POST":
        return
    if not request.is_json:
        abort(415, message="Send the body as JSON with Content-Type: application/json.")
    body = g.get("json_body")  # parsed by the strict input guard; absent for an empty body
    if body is not None and not isinstance(body, dict):
        abort(422, message='Invalid input. The body must be an object: {"items": [...]} or {"records": ...}.')


def store(records: list[dict]) -> dict:
    """Store validated records with the app's limits; 422 if the service still refuses them."""
    settings = current_app.config["AIREC"]
    try:
        result = ingest_records(
            records,
            max_items_per_record=settings.max_items_per_record,
            max_name_length=settings.max_name_length,
        )
    except IngestError as exc:
        abort(422, message=f"Invalid input. {exc}")
    observe_ingest(result["records"], result["interactions"])
    try:
        attribute(records, settings)
    except Exception:  # the events are stored: a failed attribution loses takes, never the events
        log.exception("could not attribute takes to impressions")
    return result


@blp.route("/interactions")
class Interactions(MethodView):
    @blp.arguments(IngestSchema, examples=INGEST_EXAMPLES)
    @blp.response(201, IngestResultSchema)
    def post(self, records: list[dict]):
        """Record one event or a batch of events (all-or-nothing)."""
        return store(records)

    @blp.arguments(ExportQuerySchema, location="query")
    @blp.response(200, ExportSchema)
    def get(self, args: dict):
        """Export interactions in insertion order, one keyset page at a time."""
        return stats_service.export_interactions(after=args["after"], limit=args["limit"])
