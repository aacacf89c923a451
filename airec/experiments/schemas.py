"""Shapes of the experiments API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

NAME = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", error="Use 1-64 letters, digits, '.', '_' or '-'."
)


class VariantSchema(ma.Schema):
    name = ma.fields.String(required=True, validate=NAME, metadata={"example": "control"})
    model_version = ma.fields.String(
        required=True,
        validate=validate.Length(min=1, max=64),
        metadata={"example": "20261127T101500000000Z-autoencoder-3fa2"},
    )
    weight = ma.fields.Float(
        load_default=1.0,
        allow_nan=False,
        validate=validate.Range(min=0, max=1e6),
        metadata={"example": 50, "description": "Share of users, relative to the others' weights."},
    )


class ExperimentRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=NAME, metadata={"example": "ae-vs-popularity"})
    variants = ma.fields.List(
        ma.fields.Nested(VariantSchema),
        required=True,
        validate=validate.Length(min=2, max=10),
        metadata={"description": "2 to 10 variants; the first is the baseline the others are compared with."},
    )

    @ma.validates("variants")
    def _variants(self, value: list[dict], **kwargs) -> None:
        names = [v.get("name") for v in value]
        if len(set(names)) != len(names):
            raise ma.ValidationError("Variant names must differ.")
        if not sum(v.get("weight", 0) for v in value) > 0:
            raise ma.ValidationError("The weights must sum to a positive number.")


class DifferenceSchema(ma.Schema):
    variant = ma.fields.String(metadata={"example": "new"})
    difference = ma.fields.Float(metadata={"example": 0.012})
    interval = ma.fields.List(ma.fields.Float(), metadata={"example": [0.004, 0.02]})
    significant = ma.fields.Boolean(metadata={"example": True})


class VariantResultSchema(ma.Schema):
    name = ma.fields.String(metadata={"example": "control"})
    model_version = ma.fields.String(metadata={"example": "20261127T101500000000Z-autoencoder-3fa2"})
    weight = ma.fields.Float(metadata={"example": 50})
    impressions = ma.fields.Integer(metadata={"example": 5120})
    takes = ma.fields.Integer(metadata={"example": 307})
    take_rate = ma.fields.Float(allow_none=True, metadata={"example": 0.06})
    interval = ma.fields.List(
        ma.fields.Float(), allow_none=True, metadata={"example": [0.054, 0.067], "description": "Wilson 95%"}
    )


class ExperimentSchema(ma.Schema):
    name = ma.fields.String(metadata={"example": "ae-vs-popularity"})
    status = ma.fields.String(metadata={"example": "running"})
    started_at = ma.fields.DateTime(metadata={"example": "2026-12-01T09:00:00+00:00"})
    stopped_at = ma.fields.DateTime(allow_none=True, metadata={"example": None})
    variants = ma.fields.List(ma.fields.Nested(VariantResultSchema))
    difference = ma.fields.List(
        ma.fields.Nested(DifferenceSchema),
        metadata={"description": "Each later variant's take rate minus the first's, with a 95% interval."},
    )
    verdict = ma.fields.String(
        metadata={
            "example": "not enough data",
            "description": "or 'no significant difference', '<variant> is better'",
        }
    )
    winner = ma.fields.String(allow_none=True, metadata={"example": None})
