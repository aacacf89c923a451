"""What the catalogue routes accept and answer."""

from __future__ import annotations

import json
from typing import Any

import marshmallow as ma
from marshmallow import validate

from airec.catalogue import MAX_BULK_ITEMS, MAX_PROPERTIES_BYTES, MAX_TAGS, HiddenReason
from airec.ingestion.schemas import Name
from airec.serving.schemas import StrictBoolean

_EXAMPLE = {
    "categories": ["shoes", "shoes/running"],
    "labels": ["brand:acme", "sale"],
    "hidden": False,
    "available_from": "2026-12-01T00:00:00+00:00",
    "available_until": None,
    "properties": {"title": "Trail runner 2", "price": 89.9},
}


def _tags(what: str, example: list[str]) -> ma.fields.List:
    return ma.fields.List(
        Name(),
        validate=validate.Length(max=MAX_TAGS, error=f"At most {MAX_TAGS} {what} per item."),
        metadata={
            "example": example,
            "description": f"At most {MAX_TAGS}; each follows the item-name rules.",
        },
    )


def _moment(description: str) -> ma.fields.AwareDateTime:
    return ma.fields.AwareDateTime(
        format="iso",
        allow_none=True,
        error_messages={
            "invalid_awareness": "Not an aware datetime: give a zone, e.g. 2026-12-01T00:00:00Z."
        },
        metadata={"example": "2026-12-01T00:00:00+00:00", "description": description},
    )


class Properties(ma.fields.Dict):
    """A free JSON object, stored and returned as sent, at most MAX_PROPERTIES_BYTES."""

    def _deserialize(self, value: Any, attr, data, **kwargs) -> dict:
        value = super()._deserialize(value, attr, data, **kwargs)
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
        if size > MAX_PROPERTIES_BYTES:
            raise ma.ValidationError(f"At most {MAX_PROPERTIES_BYTES} bytes of JSON; got {size}.")
        return value


class ItemFieldsSchema(ma.Schema):
    """The metadata fields. PUT sends them all (missing ones take their defaults), PATCH any of them."""

    class Meta:
        unknown = ma.RAISE

    categories = _tags("categories", _EXAMPLE["categories"])
    labels = _tags("labels", _EXAMPLE["labels"])
    hidden = StrictBoolean(metadata={"example": False, "description": "Never recommended while true."})
    available_from = _moment("Recommendable from this moment on (ISO-8601 with a zone); null: always was.")
    available_until = _moment("Recommendable until this moment (ISO-8601 with a zone); null: no end.")
    properties = Properties(
        keys=ma.fields.String(),
        metadata={"example": _EXAMPLE["properties"], "description": "Free JSON object, at most 4 KiB."},
    )

    @ma.validates_schema
    def _window_in_order(self, data: dict, **kwargs) -> None:
        start, end = data.get("available_from"), data.get("available_until")
        if start is not None and end is not None and end < start:
            raise ma.ValidationError("Must not be before available_from.", "available_until")


class BulkEntrySchema(ItemFieldsSchema):
    item = Name(required=True, metadata={"example": "trail-runner-2"})


class BulkSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    items = ma.fields.List(
        ma.fields.Nested(BulkEntrySchema),
        required=True,
        validate=validate.Length(
            min=1, max=MAX_BULK_ITEMS, error=f"Between 1 and {MAX_BULK_ITEMS} items; split a larger batch."
        ),
        metadata={
            "example": [{"item": "trail-runner-2", **_EXAMPLE}, {"item": "sold-out-boot", "hidden": True}]
        },
    )

    @ma.validates("items")
    def _each_once(self, value: list[dict], **kwargs) -> None:
        first: dict[str, int] = {}
        for position, entry in enumerate(value):
            if "item" not in entry:
                continue  # refused by its own field
            seen = first.setdefault(entry["item"], position)
            if seen != position:
                raise ma.ValidationError(
                    {position: {"item": [f"Also at index {seen}: send each item once."]}}
                )


class BulkResultSchema(ma.Schema):
    created = ma.fields.Integer(metadata={"example": 1, "description": "Items described for the first time"})
    updated = ma.fields.Integer(
        metadata={"example": 1, "description": "Items whose description was replaced"}
    )


class ItemSchema(ma.Schema):
    item = ma.fields.String(metadata={"example": "trail-runner-2"})
    categories = ma.fields.List(ma.fields.String(), metadata={"example": _EXAMPLE["categories"]})
    labels = ma.fields.List(ma.fields.String(), metadata={"example": _EXAMPLE["labels"]})
    hidden = ma.fields.Boolean(metadata={"example": False})
    available_from = ma.fields.String(allow_none=True, metadata={"example": _EXAMPLE["available_from"]})
    available_until = ma.fields.String(allow_none=True, metadata={"example": None})
    properties = ma.fields.Dict(metadata={"example": _EXAMPLE["properties"]})
    described = ma.fields.Boolean(
        metadata={"example": True, "description": "False for an item only interactions name"}
    )
    count = ma.fields.Integer(metadata={"example": 42, "description": "Interactions with this item"})
    visible = ma.fields.Boolean(metadata={"example": True, "description": "Recommendable right now"})
    hidden_reason = ma.fields.String(
        allow_none=True,
        validate=validate.OneOf([r.value for r in HiddenReason]),
        metadata={"example": None, "description": "hidden, not_yet_available, no_longer_available, or null"},
    )


class ItemListQuerySchema(ma.Schema):
    category = ma.fields.List(
        Name(),
        load_default=list,
        metadata={
            "example": ["shoes"],
            "description": "Items in any of these categories or their sub-paths.",
        },
    )
    label = ma.fields.List(
        Name(),
        load_default=list,
        metadata={"example": ["sale"], "description": "Items with all of these labels."},
    )
    hidden = ma.fields.Boolean(
        load_default=None,
        allow_none=True,
        metadata={"example": False, "description": "Only items whose `hidden` flag is this."},
    )
