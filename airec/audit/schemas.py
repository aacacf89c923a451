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
    since = ma.fields.NaiveDateTime(load_default=None, metadata={"example": "2026-12-01T00:00:00"})
    until = ma.fields.NaiveDateTime(load_default=None, metadata={"example": "2026-12-02T00:00:00"})
    before = ma.fields.Integer(
        load_default=None,
        validate=validate.Range(min=1),
        metadata={"description": "The previous page's next_before: rows older than that"},
    )
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))


class AuditEntrySchema(ma.Schema):
    id = ma.fields.Integer(metadata={"example": 17})
    at = ma.fields.DateTime(metadata={"example": "2026-12-01T09:30:00"})
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
    details = ma.fields.Dict(allow_none=True)


class AuditPageSchema(ma.Schema):
    entries = ma.fields.List(ma.fields.Nested(AuditEntrySchema))
    next_before = ma.fields.Integer(
        allow_none=True, metadata={"description": "Pass as `before` for older rows"}
    )
