"""The audit log's query and answer."""

import marshmallow as ma
from marshmallow import validate

from airec.audit.service import Action


class AuditQuerySchema(ma.Schema):
    action = ma.fields.String(
        load_default=None,
        validate=validate.OneOf([a.value for a in Action]),
        metadata={"example": "model.activated"},
    )
    actor = ma.fields.String(
        load_default=None, validate=validate.Length(min=1, max=128), metadata={"example": "ops-admin"}
    )
    since = ma.fields.DateTime(
        load_default=None,
        metadata={"example": "2026-12-01T00:00:00Z", "description": "From (UTC if no zone)"},
    )
    until = ma.fields.DateTime(
        load_default=None,
        metadata={"example": "2026-12-02T00:00:00Z", "description": "Before (UTC if no zone)"},
    )
    before = ma.fields.Integer(
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"description": "The previous page's next_before: rows older than that"},
    )
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer(metadata={"example": 17})
    at = ma.fields.AwareDateTime(format="iso", metadata={"example": "2026-12-01T09:30:00+00:00"})
    actor = ma.fields.String(metadata={"example": "ops-admin", "description": "Key name, `cli` or `system`"})
    action = ma.fields.String(metadata={"example": "model.activated"})
    target = ma.fields.String(
        allow_none=True,
        metadata={
            "example": "20261201T090000000000Z-ease-1a2b",
            "description": "A deleted user: sha256 of the name",
        },
    )
    address = ma.fields.String(allow_none=True, metadata={"example": "10.0.0.7"})
    details = ma.fields.Dict(
        allow_none=True,
        metadata={"example": {"previous": "20261130T080000000000Z-ease-77c1", "pinned": True}},
    )


class AuditPageSchema(ma.Schema):
    entries = ma.fields.List(ma.fields.Nested(AuditEntrySchema))
    next_before = ma.fields.Integer(
        allow_none=True,
        metadata={"example": 17, "description": "Pass as `before` for older rows (null: no more)"},
    )
