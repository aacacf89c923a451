"""Shapes of /api/v1/keys."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from airec.auth.roles import Role
from airec.auth.service import NAME_PATTERN, ROLES


class KeyCreateSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(
        required=True,
        validate=validate.Regexp(NAME_PATTERN, error="1-64 letters, digits, _ . @ - (alphanumeric first)."),
        metadata={"example": "ops", "description": "Unique name; used to revoke the key."},
    )
    role = ma.fields.String(
        required=True,
        validate=validate.OneOf(ROLES),
        metadata={"example": Role.READ.value, "description": f"{' | '.join(ROLES)} (admin implies all)."},
    )


class KeySchema(ma.Schema):
    name = ma.fields.String(metadata={"example": "ops"})
    role = ma.fields.String(metadata={"example": Role.READ.value})
    prefix = ma.fields.String(metadata={"example": "airec_x1Yz9Q", "description": "First characters only."})
    created_at = ma.fields.DateTime(metadata={"example": "2026-11-27T10:15:00"})
    last_used_at = ma.fields.DateTime(
        allow_none=True, metadata={"description": "Updated at most once a minute.", "example": None}
    )


class CreatedKeySchema(KeySchema):
    key = ma.fields.String(
        metadata={"example": "airec_" + "x" * 43, "description": "The key. Shown this once; store it now."}
    )


class KeyListSchema(ma.Schema):
    keys = ma.fields.List(ma.fields.Nested(KeySchema))
