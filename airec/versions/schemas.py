"""Request and response shapes of the version API (with examples for /docs)."""

import marshmallow as ma
from marshmallow import validate

from airec.training.schemas import refit_field
from airec.versions.service import STATUSES

VERSION_EXAMPLE = "20261127T101500000000Z-itemknn-3fa2"


class VersionListQuerySchema(ma.Schema):
    status = ma.fields.String(
        load_default=None,
        validate=validate.OneOf(STATUSES),
        metadata={"example": "ready", "description": f"Only this status ({', '.join(STATUSES)})."},
    )
    limit = ma.fields.Integer(
        load_default=100, validate=validate.Range(min=1, max=1000), metadata={"example": 20}
    )


class ModelVersionSchema(ma.Schema):
    version = ma.fields.String(metadata={"example": VERSION_EXAMPLE})
    algorithm = ma.fields.String(metadata={"example": "itemknn"})
    status = ma.fields.String(
        metadata={
            "example": "active",
            "description": "active (the database pointer names it) | ready | failed (did not verify) "
            "| archived (files deleted)",
        }
    )
    error = ma.fields.String(
        allow_none=True,
        metadata={
            "example": None,
            "description": "Why a failed version was refused (checksums, a folder whose name differs "
            "from its manifest's version, ...); null otherwise",
        },
    )
    pinned = ma.fields.Boolean(
        metadata={
            "example": False,
            "description": "Active because an operator activated it: runs register but do not activate "
            "new versions until POST /api/v1/models/unpin",
        }
    )
    created_at = ma.fields.DateTime(metadata={"example": "2026-11-27T10:15:00"})
    on_disk = ma.fields.Boolean(metadata={"example": True})
    run_id = ma.fields.Integer(allow_none=True, metadata={"example": 3})
    data = ma.fields.Dict(
        metadata={"example": {"units": 943, "users": 943, "items": 1682, "interactions": 100000}}
    )
    params = ma.fields.Dict(metadata={"example": {"n_neighbors": 100}})
    validation = ma.fields.Dict(metadata={"example": {"ndcg@100": 0.41}})
    evaluation = ma.fields.Dict(
        metadata={
            "example": {
                "protocol": "strong",
                "model": {"ndcg@10": 0.35, "recall@20": 0.33},
                "popularity": {"ndcg@10": 0.15, "recall@20": 0.17},
            }
        }
    )
    refit = refit_field()
    contains_deleted_data = ma.fields.Boolean(
        metadata={
            "example": False,
            "description": "Trained on interactions deleted since (a user, an item, retention): the model "
            "still holds what it learned from them until a newer version replaces it",
        }
    )
    training_seconds = ma.fields.Float(allow_none=True, metadata={"example": 12.5})
    training_cpu_seconds = ma.fields.Float(
        allow_none=True,
        metadata={"example": 11.8, "description": "CPU time of the fit: its cost, whatever else runs"},
    )


class VersionListSchema(ma.Schema):
    active = ma.fields.String(allow_none=True, metadata={"example": VERSION_EXAMPLE})
    pinned = ma.fields.String(
        allow_none=True, metadata={"example": None, "description": "The pinned version, if any"}
    )
    versions = ma.fields.List(ma.fields.Nested(ModelVersionSchema))


class ActivationSchema(ma.Schema):
    previous = ma.fields.String(
        allow_none=True,
        metadata={"example": "20261126T090000000000Z-itemknn-91bc", "description": "Active before"},
    )
    model = ma.fields.Nested(ModelVersionSchema)


class UnpinSchema(ma.Schema):
    unpinned = ma.fields.String(
        allow_none=True, metadata={"example": VERSION_EXAMPLE, "description": "Pinned before (or null)"}
    )
    active = ma.fields.String(allow_none=True, metadata={"example": VERSION_EXAMPLE})
