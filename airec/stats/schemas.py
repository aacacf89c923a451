"""Shapes of the read-only statistics and export endpoints."""

from __future__ import annotations

import marshmallow as ma

MAX_EXPORT_LIMIT = 10000


class CountsSchema(ma.Schema):
    users = ma.fields.Integer(metadata={"example": 943})
    items = ma.fields.Integer(metadata={"example": 1682})
    records = ma.fields.Integer(metadata={"example": 943})
    interactions = ma.fields.Integer(metadata={"example": 100000})


class ItemCountSchema(ma.Schema):
    item = ma.fields.String(metadata={"description": "Item name, verbatim.", "example": "beer"})
    count = ma.fields.Integer(metadata={"description": "Interactions with this item.", "example": 42})


class ExportQuerySchema(ma.Schema):
    after = ma.fields.Integer(
        load_default=0,
        validate=ma.validate.Range(min=0),
        metadata={"description": "Interactions with a larger id (a previous next_after).", "example": 0},
    )
    limit = ma.fields.Integer(
        load_default=1000,
        validate=ma.validate.Range(min=1, max=MAX_EXPORT_LIMIT),
        metadata={"description": f"Page size, 1 to {MAX_EXPORT_LIMIT}.", "example": 1000},
    )


class ExportedInteractionSchema(ma.Schema):
    id = ma.fields.Integer(metadata={"example": 1})
    record = ma.fields.Integer(metadata={"example": 1})
    user = ma.fields.String(allow_none=True, metadata={"example": "father"})
    item = ma.fields.String(metadata={"example": "beer"})
    timestamp = ma.fields.DateTime(
        allow_none=True,
        metadata={"description": "The record's timestamp (UTC), if sent.", "example": "2024-05-01T18:30:00"},
    )


class ExportSchema(ma.Schema):
    interactions = ma.fields.List(ma.fields.Nested(ExportedInteractionSchema))
    next_after = ma.fields.Integer(
        allow_none=True,
        metadata={"description": "Pass as `after` for the next page; null on the last.", "example": 1000},
    )


class DailyQuerySchema(ma.Schema):
    days = ma.fields.Integer(
        load_default=30,
        validate=ma.validate.Range(min=1, max=366),
        metadata={"description": "How many UTC days back, today included (1 to 366).", "example": 30},
    )


class DayCountSchema(ma.Schema):
    date = ma.fields.String(metadata={"description": "UTC day, YYYY-MM-DD.", "example": "2026-11-27"})
    interactions = ma.fields.Integer(metadata={"description": "Interactions stored that day.", "example": 42})


class DailySchema(ma.Schema):
    days = ma.fields.List(ma.fields.Nested(DayCountSchema))
