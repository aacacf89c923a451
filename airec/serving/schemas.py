import marshmallow as ma
from flask import current_app, has_app_context
from marshmallow import validate

#: The absolute cap on k (documented in the spec); AIREC_MAX_K may lower it.
K_CAP = 1000


class KWithinLimit:
    """Schema mixin: k may not exceed the deployment's AIREC_MAX_K."""

    @ma.validates("k")
    def _k_within_limit(self, value: int, **kwargs) -> None:
        top = min(K_CAP, current_app.config["AIREC"].max_k) if has_app_context() else K_CAP
        if value > top:
            raise ma.ValidationError(f"Must be between 1 and {top}.")


class StrictBoolean(ma.fields.Boolean):
    """A JSON body's true or false only: strings such as "false" or "yes" are a 422, never a guess."""

    def __init__(self, **kwargs) -> None:
        super().__init__(truthy={True}, falsy={False}, **kwargs)


NAME = ma.fields.String(validate=validate.Length(min=1, max=256))


class RecommendationQuerySchema(KWithinLimit, ma.Schema):
    class Meta:
        unknown = ma.RAISE

    items = ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=256)),
        required=True,
        validate=validate.Length(max=1000),
        metadata={"example": ["wine", "cheese"], "description": "The set to complete (may be empty)."},
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
        metadata={"example": False, "description": "Add `because`: the input items that contributed most."},
    )


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


def _exclude_field() -> ma.fields.List:
    return ma.fields.List(
        ma.fields.String(validate=validate.Length(min=1, max=256)),
        load_default=list,
        validate=validate.Length(max=1000),
        metadata={"example": ["g1-i2"], "description": "Items never to propose (repeat the parameter)."},
    )


class UserRecommendationQuerySchema(KWithinLimit, ma.Schema):
    k = ma.fields.Integer(load_default=10, validate=validate.Range(min=1, max=K_CAP), metadata={"example": 5})
    exclude = _exclude_field()
    explain = ma.fields.Boolean(
        load_default=False,
        metadata={"example": True, "description": "Add `because`: the history items that contributed most."},
    )


class UserRecommendationSchema(RecommendationSchema):
    user = ma.fields.String(metadata={"example": "u17"})
    history_size = ma.fields.Integer(
        metadata={"example": 4, "description": "Distinct items in the user's stored history (never proposed)"}
    )


class SimilarQuerySchema(KWithinLimit, ma.Schema):
    k = ma.fields.Integer(load_default=10, validate=validate.Range(min=1, max=K_CAP), metadata={"example": 5})
    exclude = _exclude_field()


class SimilarItemsSchema(ma.Schema):
    item = ma.fields.String(metadata={"example": "g1-i0"})
    items = ma.fields.List(ma.fields.Nested(ScoredItemSchema))
    model_version = ma.fields.String(metadata={"example": "20261127T101500000000Z-itemknn-3fa2"})
