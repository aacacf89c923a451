"""Routes of the original system, kept so its clients work unchanged.

Function routes (no /api/v1 prefix), documented in the OpenAPI spec; bodies are read as JSON whatever
the Content-Type, as the old clients did not always send one. Errors are the same JSON objects as
everywhere else.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, g, jsonify, request
from flask_smorest import abort
from marshmallow import validate

from airec.compat import service
from airec.extensions import Blueprint
from airec.ingestion.schemas import IngestResultSchema, Name, RecordSchema
from airec.ingestion.views import store
from airec.serving.schemas import (
    FILTERED,
    ITEMS_CAP,
    RECOMMENDATION_ID,
    VARIANT,
    CatalogueRules,
    ItemsWithinLimit,
)

bp = Blueprint("compat", __name__, description="Routes of the original system, kept for its clients.")


class CountSchema(ma.Schema):
    count = ma.fields.Integer(metadata={"example": 42})


class NamesSchema(ma.Schema):
    items = ma.fields.List(ma.fields.String(), metadata={"example": ["beer", "diapers", "chips"]})


class ProposalSchema(ma.Schema):
    items = ma.fields.List(ma.fields.String(), metadata={"example": ["chips", "salsa"]})
    scores = ma.fields.List(ma.fields.Float(), metadata={"example": [0.21, 0.08]})
    filtered = FILTERED
    recommendation_id = RECOMMENDATION_ID
    variant = VARIANT
    model_version = ma.fields.String(allow_none=True, metadata={"example": None})


def _body(schema: type[ma.Schema]) -> dict:
    """OpenAPI request body for a schema (documented only: the body is parsed by `_load`)."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


class ProposeSchema(ItemsWithinLimit, CatalogueRules, ma.Schema):
    """Body of POST /proposeInteraction."""

    items = ma.fields.List(
        Name(),
        required=True,
        validate=validate.Length(max=ITEMS_CAP),
        metadata={"example": ["beer", "diapers"], "description": "At most AIREC_MAX_HISTORY items (500)."},
    )
    k = ma.fields.Integer(load_default=10, metadata={"example": 3})

    @ma.validates("k")
    def _k_in_range(self, value: int, **kwargs) -> None:
        top = current_app.config["AIREC"].max_k
        if not 1 <= value <= top:
            raise ma.ValidationError(f"Must be between 1 and {top}.")


def _load(schema: ma.Schema) -> Any:
    """Parse the JSON body with `schema`, answering 400/422 JSON errors like the /api/v1 routes."""
    body = g.json_body if "json_body" in g else request.get_json(force=True, silent=True)
    if body is None:
        abort(400, message="The body must be a JSON object.")
    if not isinstance(body, dict):
        abort(422, message="Invalid input. The body must be a JSON object.")
    try:
        return schema.load(body)
    except ma.ValidationError as exc:
        abort(422, messages=exc.messages)


@bp.route("/recordInteraction", methods=["POST"])
@bp.doc(**_body(RecordSchema))
@bp.response(201, IngestResultSchema)
def record_interaction():
    """One record, as POST /api/v1/interactions; answers 201 {"records": 1, "interactions": m}."""
    record = _load(RecordSchema())
    return jsonify(store([record])), 201


@bp.route("/listUserCount", methods=["GET"])
@bp.response(200, CountSchema)
def list_user_count():
    """How many users are stored."""
    return jsonify(count=service.user_count())


@bp.route("/listItemCount", methods=["GET"])
@bp.response(200, CountSchema)
def list_item_count():
    """How many items are stored."""
    return jsonify(count=service.item_count())


@bp.route("/listItems", methods=["GET"])
@bp.response(200, NamesSchema)
def list_items():
    """Every item name, most popular first."""
    return jsonify(items=service.item_names())


@bp.route("/proposeInteraction", methods=["POST"])
@bp.doc(**_body(ProposeSchema))
@bp.response(200, ProposalSchema)
def propose_interaction():
    """Recommendations in the old shape: {"items": [names], "scores": [floats]}."""
    return jsonify(service.propose(**_load(ProposeSchema())))
