from typing import Any

import marshmallow as ma
from flask import current_app, has_app_context
from marshmallow import validate

from airec.serving import EXPLAIN_INPUTS

#: The absolute cap on k (documented in the spec); AIREC_MAX_K may lower it.
K_CAP = 1000
#: The absolute cap on a basket's items (documented in the spec); AIREC_MAX_HISTORY (default 500) lowers it.
ITEMS_CAP = 1000


class KWithinLimit:
    """Schema mixin: k may not exceed the deployment's AIREC_MAX_K."""

    @ma.validates("k")
    def _k_within_limit(self, value: int, **kwargs) -> None:
        top = max_k()
        if value > top:
            raise ma.ValidationError(f"Must be between 1 and {top}.")


class StrictBoolean(ma.fields.Boolean):
    """A JSON body's true or false only: strings such as "false" or "yes" are a 422, never a guess."""

    def __init__(self, **kwargs) -> None:
        super().__init__(truthy={True}, falsy={False}, **kwargs)


def max_k() -> int:
    """The largest k a query may ask for here: AIREC_MAX_K, within K_CAP."""
    return _query_limits()[0]


def _query_limits() -> tuple[int, int]:
    """(max_k(), max_input_items()) with one look at the app's settings (a plain query's check)."""
    if not has_app_context():
        return K_CAP, ITEMS_CAP
    settings = current_app.config["AIREC"]
    return min(K_CAP, settings.max_k), min(ITEMS_CAP, settings.max_history)


def max_input_items() -> int:
    """The most items a basket may hold here: AIREC_MAX_HISTORY, within ITEMS_CAP."""
    return _query_limits()[1]


class ItemsWithinLimit:
    """Schema mixin: a basket of more than AIREC_MAX_HISTORY items is refused, not cut: a set has no
    order that says which items a cut should keep, so the client chooses (e.g. its most recent)."""

    @ma.validates("items")
    def _items_within_limit(self, value: list, **kwargs) -> None:
        top = max_input_items()
        if len(value) > top:
            raise ma.ValidationError(
                f"At most {top} items (AIREC_MAX_HISTORY); got {len(value)}. "
                f"Send {top} at most, e.g. the most recent."
            )


NAME = ma.fields.String(validate=validate.Length(min=1, max=256))

#: At most this many names in one of a query's catalogue filters.
RULES_CAP = 100
_RULE_FIELDS = {
    "categories": (
        "Only items in at least one of these categories (a category matches its '/' sub-paths).",
        ["shoes"],
    ),
    "labels": ("Only items that have all of these labels.", ["sale"]),
    "exclude_labels": ("No item that has any of these labels.", ["adult"]),
}


def _rule_field(name: str, repeated: bool = False) -> ma.fields.List:
    description, example = _RULE_FIELDS[name]
    return ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=256)),
        load_default=list,
        validate=validate.Length(max=RULES_CAP),
        metadata={
            "example": example,
            "description": description
            + (" Repeat the parameter." if repeated else "")
            + " Hidden and out-of-window items are never answered anyway.",
        },
    )


class CatalogueRules:
    """Schema mixin: the catalogue filters every answer accepts."""

    categories = _rule_field("categories")
    labels = _rule_field("labels")
    exclude_labels = _rule_field("exclude_labels")


class CatalogueRulesInQuery:
    categories = _rule_field("categories", repeated=True)
    labels = _rule_field("labels", repeated=True)
    exclude_labels = _rule_field("exclude_labels", repeated=True)


FILTERED = ma.fields.Integer(
    metadata={
        "example": 0,
        "description": "Candidates ranked above the answer's last item that a rule removed (hidden, "
        "outside its availability window, category, label, exclude); every removed one if the answer is "
        "short.",
    }
)


RECOMMENDATION_ID = ma.fields.String(
    metadata={
        "example": "q3VkP0yT2mE8aB1c",
        "description": "This answer's id (opaque, URL-safe): send it as `recommendation_id` with the events "
        "it leads to, so they count as takes of it.",
    }
)
VARIANT = ma.fields.String(
    allow_none=True,
    metadata={"example": None, "description": "The experiment variant that answered; null outside one."},
)


class RecommendationQuerySchema(KWithinLimit, ItemsWithinLimit, CatalogueRules, ma.Schema):
    class Meta:
        unknown = ma.RAISE

    user = ma.fields.String(
        allow_none=True,
        validate=validate.Length(min=1, max=256),
        metadata={
            "example": "u17",
            "description": "Who is shown the answer (optional): recorded with its impression, so that "
            "user's later events on these items count as takes even without the recommendation_id.",
        },
    )
    items = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=256)),
        required=True,
        validate=validate.Length(max=ITEMS_CAP),
        metadata={
            "example": ["wine", "cheese"],
            "description": "The set to complete (may be empty), oldest first. At most AIREC_MAX_HISTORY "
            "items (default 500): a longer list is a 422, never cut silently.",
        },
    )
    k = ma.fields.Integer(
        load_default=10, strict=True, validate=validate.Range(min=1, max=K_CAP), metadata={"example": 3}
    )
    exclude = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=256)),
        load_default=list,
        validate=validate.Length(max=10000),
        metadata={"example": ["crackers"], "description": "Items never to propose."},
    )
    explain = StrictBoolean(
        load_default=False,
        metadata={
            "example": False,
            "description": "Add `because`: the input items that contributed most, among the last "
            f"{EXPLAIN_INPUTS} of `items` (the most recent); all items still count for the scores.",
        },
    )

    def plain_load(self, data) -> dict | None:
        """What `load` gives for a plain, valid query (airec.extensions.ParsedBodyParser), else None."""
        return None if self.many else _plain_query(data)

    def load(self, data, *, many=None, partial=None, unknown=None):
        """A plain, valid query is checked in one pass with exactly the fields' rules (the fields'
        machinery cost more than scoring a small catalogue); anything else goes through marshmallow,
        which gives the same result or the error message."""
        if many is None and partial is None and unknown in (None, ma.RAISE) and not self.many:
            fast = _plain_query(data)
            if fast is not None:
                return fast
        return super().load(data, many=many, partial=partial, unknown=unknown)


_QUERY_KEYS = frozenset({"items", "k", "exclude", "explain", "user", *_RULE_FIELDS})


def _plain_names(value: Any, most: int) -> bool:
    return (
        type(value) is list
        and len(value) <= most
        and all(type(name) is str and 0 < len(name) <= 256 for name in value)
    )


def _plain_query(data: Any) -> dict | None:
    """What RecommendationQuerySchema loads from `data`, or None unless it is plain and valid."""
    if type(data) is not dict or "items" not in data or not data.keys() <= _QUERY_KEYS:
        return None
    items, k, explain = data["items"], data.get("k", 10), data.get("explain", False)
    most_k, most_items = _query_limits()
    if type(k) is not int or not 1 <= k <= most_k or type(explain) is not bool:
        return None
    if not _plain_names(items, most_items):
        return None
    query = {"items": list(items), "k": k, "explain": explain}
    for name, most in _LISTS:  # absent lists (most bodies) cost one lookup each
        names = data.get(name, _ABSENT)
        if names is _ABSENT:
            query[name] = []
        elif _plain_names(names, most):
            query[name] = list(names)
        else:
            return None
    if "user" in data:
        user = data["user"]
        if user is not None and not (type(user) is str and 0 < len(user) <= 256):
            return None
        query["user"] = user
    return query


_ABSENT = object()
#: The optional name lists of a query and their longest allowed length.
_LISTS = (("exclude", 10000), *((name, RULES_CAP) for name in _RULE_FIELDS))


class BecauseSchema(ma.Schema):
    item = ma.fields.String(metadata={"example": "wine"})
    contribution = ma.fields.Float(metadata={"example": 0.7})


class ScoredItemSchema(ma.Schema):
    item = ma.fields.String(metadata={"example": "olives"})
    score = ma.fields.Float(metadata={"example": 0.12})
    because = ma.fields.List(
        ma.fields.Nested(BecauseSchema), metadata={"description": "Only with explain=true"}
    )


class RecommendationSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ScoredItemSchema))
    model_version = ma.fields.String(
        allow_none=True, metadata={"example": "20261127T101500000000Z-autoencoder-3fa2"}
    )
    unknown_items = ma.fields.List(ma.fields.String(), metadata={"example": []})
    fallback = ma.fields.String(
        allow_none=True,
        metadata={"example": None, "description": "'popularity' when no model or no known input item"},
    )
    filtered = FILTERED
    recommendation_id = RECOMMENDATION_ID
    variant = VARIANT


def _exclude_field() -> ma.fields.List:
    return ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=256)),
        load_default=list,
        validate=validate.Length(max=1000),
        metadata={"example": ["g1-i2"], "description": "Items never to propose (repeat the parameter)."},
    )


class UserRecommendationQuerySchema(KWithinLimit, CatalogueRulesInQuery, ma.Schema):
    k = ma.fields.Integer(load_default=10, validate=validate.Range(min=1, max=K_CAP), metadata={"example": 5})
    exclude = _exclude_field()
    explain = ma.fields.Boolean(
        load_default=False,
        metadata={
            "example": True,
            "description": "Add `because`: the history items that contributed most, among the user's "
            f"{EXPLAIN_INPUTS} most recent.",
        },
    )


class UserRecommendationSchema(RecommendationSchema):
    user = ma.fields.String(metadata={"example": "u17"})
    history_size = ma.fields.Integer(
        metadata={"example": 4, "description": "Distinct items in the user's stored history (never proposed)"}
    )
    history_used = ma.fields.Integer(
        metadata={
            "example": 4,
            "description": "How many of them were scored: the most recent, at most AIREC_MAX_HISTORY "
            "(default 500)",
        }
    )


class SimilarQuerySchema(KWithinLimit, CatalogueRulesInQuery, ma.Schema):
    k = ma.fields.Integer(load_default=10, validate=validate.Range(min=1, max=K_CAP), metadata={"example": 5})
    exclude = _exclude_field()


class SimilarItemsSchema(ma.Schema):
    item = ma.fields.String(metadata={"example": "g1-i0"})
    items = ma.fields.List(ma.fields.Nested(ScoredItemSchema))
    model_version = ma.fields.String(metadata={"example": "20261127T101500000000Z-itemknn-3fa2"})
    filtered = FILTERED
    recommendation_id = RECOMMENDATION_ID
    variant = VARIANT
