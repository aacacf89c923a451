"""Shapes of GET /api/v1/stats/online."""

from __future__ import annotations

import marshmallow as ma

from airec.feedback.kinds import Route

_NAME = ma.validate.Length(min=1, max=64)


class OnlineQuerySchema(ma.Schema):
    since = ma.fields.DateTime(
        metadata={
            "description": "Start (ISO 8601, UTC without an offset), rounded down to the hour. Default: "
            "AIREC_IMPRESSION_DAYS ago (everything kept).",
            "example": "2026-12-01T00:00:00Z",
        }
    )
    until = ma.fields.DateTime(
        metadata={
            "description": "End, rounded up to the hour. Default: now.",
            "example": "2026-12-02T00:00:00Z",
        }
    )
    model_version = ma.fields.String(validate=_NAME, metadata={"description": "Only this model version."})
    variant = ma.fields.String(validate=_NAME, metadata={"description": "Only this experiment variant."})
    route = ma.fields.Enum(Route, by_value=True, metadata={"description": "Only answers of this route."})

    @ma.validates_schema
    def _ordered(self, data: dict, **kwargs) -> None:
        if "since" in data and "until" in data and data["since"] >= data["until"]:
            raise ma.ValidationError("Must be after since.", field_name="until")


class RateSchema(ma.Schema):
    impressions = ma.fields.Integer(metadata={"example": 1200})
    takes = ma.fields.Integer(metadata={"example": 84})
    take_rate = ma.fields.Float(
        allow_none=True, metadata={"example": 0.07, "description": "Taken impressions per impression."}
    )
    interval = ma.fields.List(
        ma.fields.Float(),
        allow_none=True,
        metadata={"example": [0.057, 0.086], "description": "Wilson 95% interval of take_rate."},
    )


class PositionRateSchema(RateSchema):
    position = ma.fields.Integer(
        metadata={"example": 1, "description": "1-based; impressions here are answers with a p-th item."}
    )


class OnlineStatsSchema(RateSchema):
    since = ma.fields.DateTime(
        metadata={"example": "2026-12-01T00:00:00+00:00", "description": "Whole hours from"}
    )
    until = ma.fields.DateTime(
        metadata={"example": "2026-12-02T00:00:00+00:00", "description": "to (excluded)"}
    )
    by_position = ma.fields.List(ma.fields.Nested(PositionRateSchema))
