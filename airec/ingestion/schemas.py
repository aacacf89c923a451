"""What POST /api/v1/interactions accepts: one record, or a batch of records."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import current_app, has_app_context
from marshmallow import validate

from airec.config import Settings
from airec.feedback.kinds import DEFAULT_TYPE
from airec.ingestion.service import (
    FEEDBACK_FIELDS,
    NAME_COLUMN_LENGTH,
    TYPE_LENGTH,
    forbidden_character,
    name_problem,
)

_DEFAULTS = Settings()


def limits() -> Settings:
    """The running app's settings; the defaults outside an app (CLI importer, unit tests)."""
    if has_app_context():
        return current_app.config["AIREC"]
    return _DEFAULTS


class Name(ma.fields.String):
    """A user or item name: kept verbatim; empty, over-long and control characters are refused.

    The configured max_name_length is checked by the validators below, once per list rather than
    once per name: looking the settings up is the costliest step of a 10,000-record batch.
    """

    def _deserialize(self, value: Any, attr, data, **kwargs) -> str:
        problem = name_problem(value)
        if problem:
            raise ma.ValidationError(problem)
        return value


def _too_long(name: str, cap: int) -> str | None:
    return f"Longer than {cap} characters." if len(name) > cap else None


def _check_user(user: str | None) -> None:
    problem = user and _too_long(user, limits().max_name_length)
    if problem:
        raise ma.ValidationError(problem)


def _check_items(items: list) -> None:
    if not items:
        raise ma.ValidationError("Must contain at least one item.")
    settings = limits()
    cap = settings.max_items_per_record
    if len(items) > cap:
        raise ma.ValidationError(f"At most {cap} items per record; got {len(items)}.")
    problems = {i: [p] for i, item in enumerate(items) if (p := _too_long(item, settings.max_name_length))}
    if problems:
        raise ma.ValidationError(problems)


def _user() -> Name:
    return Name(
        allow_none=True,
        validate=_check_user,
        metadata={"description": "Who did it. Omit for an anonymous basket.", "example": "father"},
    )


def _timestamp() -> ma.fields.DateTime:
    return ma.fields.DateTime(
        allow_none=True,
        metadata={"description": "ISO 8601; without an offset it is UTC.", "example": "2024-05-01T18:30:00Z"},
    )


def _check_type(value: str) -> None:
    problem = name_problem(value, max_length=TYPE_LENGTH)
    if problem:
        raise ma.ValidationError(problem)
    accepted = limits().event_type_set
    if accepted is not None and value not in accepted:
        raise ma.ValidationError(
            f"Unknown type {value!r}: AIREC_EVENT_TYPES accepts {', '.join(sorted(accepted))}."
        )


class Feedback:
    """Schema mixin: a record's feedback type, value and the answer it came from (all optional; they
    apply to every item of the record)."""

    type = ma.fields.String(
        validate=_check_type,
        metadata={
            "description": f"What the user did: view, cart, purchase, dislike, ... (default {DEFAULT_TYPE}); "
            f"at most {TYPE_LENGTH} characters. AIREC_EVENT_TYPES may restrict the accepted types.",
            "example": "purchase",
        },
    )
    value = ma.fields.Float(
        allow_nan=False,
        allow_none=True,
        metadata={"description": "A finite number, e.g. a rating or an amount.", "example": 4.5},
    )
    recommendation_id = ma.fields.String(
        allow_none=True,
        validate=validate.Length(min=1, max=64),
        metadata={
            "description": "The answer that led to this event (its recommendation_id). An id the service "
            "never issued is accepted (and counted), it just takes nothing.",
            "example": "q3VkP0yT2mE8aB1c",
        },
    )


class RecordSchema(Feedback, ma.Schema):
    """One event: a user (or nobody) with a set of items. Duplicate items are collapsed."""

    user = _user()
    items = ma.fields.List(
        Name(),
        required=True,
        validate=_check_items,
        metadata={"example": ["beer", "diapers", "chips"]},
    )
    timestamp = _timestamp()


_PLAIN_KEYS = frozenset({"user", "items"})


class RecordList(ma.fields.List):
    """A batch of RecordSchema records. A batch of plain records (a user or null, and item names, no
    timestamp) is checked here in one loop, with exactly RecordSchema's rules; anything else, and any
    record one of them refuses, goes through marshmallow, which gives the same result or the same
    error. Validating 1,000 records field by field in marshmallow took longer than storing them."""

    def _deserialize(self, value: Any, attr, data, **kwargs) -> list[dict]:
        fast = _plain_records(value)
        return fast if fast is not None else super()._deserialize(value, attr, data, **kwargs)


def _plain_records(value: Any) -> list[dict] | None:
    """The records as RecordSchema would load them, or None unless each is plain and valid."""
    if type(value) is not list:
        return None
    settings = limits()
    cap, longest = settings.max_items_per_record, min(settings.max_name_length, NAME_COLUMN_LENGTH)
    out = []
    for record in value:
        if type(record) is not dict or not record.keys() <= _PLAIN_KEYS:
            return None
        items = record.get("items")
        if type(items) is not list or not 0 < len(items) <= cap:
            return None
        for item in items:
            if type(item) is not str or not 0 < len(item) <= longest or forbidden_character(item):
                return None
        if "user" in record:
            user = record["user"]
            if user is not None and (
                type(user) is not str or not 0 < len(user) <= longest or forbidden_character(user)
            ):
                return None
            out.append({"user": user, "items": list(items)})
        else:
            out.append({"items": list(items)})
    return out


class IngestSchema(Feedback, ma.Schema):
    """Either one record (user, items, timestamp) or a batch: {"records": [record, ...]}."""

    user = _user()
    items = ma.fields.List(Name(), validate=_check_items, metadata={"example": ["beer", "diapers", "chips"]})
    timestamp = _timestamp()
    records = RecordList(
        ma.fields.Nested(RecordSchema),
        metadata={"description": "A batch, stored all-or-nothing.", "example": [{"items": ["milk"]}]},
    )

    @ma.pre_load
    def _one_shape(self, data: Any, **kwargs) -> Any:
        """Decide the shape before field validation, so a 10,001-record batch fails fast."""
        if not isinstance(data, dict):
            raise ma.ValidationError(
                'The body must be a JSON object: {"user": ..., "items": [...]} or {"records": [...]}.'
            )
        if "records" in data:
            mixed = sorted(key for key in ("user", "items", "timestamp", *FEEDBACK_FIELDS) if key in data)
            if mixed:
                raise ma.ValidationError(
                    {"records": [f"Send one record or a batch of records, not both (also got {mixed[0]})."]}
                )
            records = data["records"]
            if isinstance(records, list):
                cap = limits().max_batch_records
                if not records:
                    raise ma.ValidationError({"records": ["Must contain at least one record."]})
                if len(records) > cap:
                    raise ma.ValidationError(
                        {"records": [f"At most {cap} records per request; got {len(records)}."]}
                    )
        elif "items" not in data:
            raise ma.ValidationError({"items": ["Missing data for required field."]})
        return data

    @ma.post_load
    def _as_records(self, data: dict, **kwargs) -> list[dict]:
        """Both shapes become a list of records for the service."""
        if "records" in data:
            return data["records"]
        return [data]


#: Request body examples for the OpenAPI document (schema-level examples are not emitted by apispec).
INGEST_EXAMPLES = {
    "one record": {"value": {"user": "father", "items": ["beer", "diapers", "chips"]}},
    "a batch": {
        "value": {
            "records": [
                {"user": "father", "items": ["beer", "diapers", "chips"]},
                {"items": ["milk", "bread"], "timestamp": "2024-05-01T18:30:00Z"},
            ]
        }
    },
}


class IngestResultSchema(ma.Schema):
    records = ma.fields.Integer(metadata={"description": "Records stored.", "example": 1})
    interactions = ma.fields.Integer(metadata={"description": "(record, item) pairs stored.", "example": 3})
