import marshmallow as ma
from marshmallow import validate

from airec.serving.schemas import StrictBoolean
from airec.training.choices import CHOICES, EVAL_KS
from airec.training.status import RunStatus


class TrainingRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    algorithm = ma.fields.String(
        load_default=None,
        validate=validate.OneOf(CHOICES),
        metadata={
            "example": "autoencoder",
            "description": f"One of {', '.join(CHOICES)}; default from settings.",
        },
    )
    params = ma.fields.Dict(
        keys=ma.fields.String(),
        load_default=dict,
        metadata={"example": {"epochs": 50}, "description": "Hyper-parameters of the algorithm."},
    )
    warm_start = StrictBoolean(
        load_default=None,
        metadata={"example": False, "description": "Start from the active autoencoder's weights."},
    )


class ProgressSchema(ma.Schema):
    epoch = ma.fields.Integer(metadata={"example": 12})
    max_epochs = ma.fields.Integer(metadata={"example": 100})
    train_loss = ma.fields.Float(allow_none=True, metadata={"example": 512.3})
    val_loss = ma.fields.Float(allow_none=True, metadata={"example": 530.1})


class RunSchema(ma.Schema):
    id = ma.fields.Integer(metadata={"example": 1})
    status = ma.fields.String(
        metadata={"example": RunStatus.RUNNING.value, "description": "|".join(RunStatus)}
    )
    algorithm = ma.fields.String(metadata={"example": "autoencoder"})
    trigger = ma.fields.String(metadata={"example": "api"})
    params = ma.fields.Dict(metadata={"example": {"params": {}, "warm_start": False}})
    created_at = ma.fields.DateTime(metadata={"example": "2026-11-27T10:15:00"})
    started_at = ma.fields.DateTime(allow_none=True, metadata={"example": "2026-11-27T10:15:01"})
    finished_at = ma.fields.DateTime(allow_none=True, metadata={"example": None})
    duration_seconds = ma.fields.Float(allow_none=True, metadata={"example": 42.5})
    progress = ma.fields.Nested(ProgressSchema)
    history = ma.fields.List(
        ma.fields.Dict(),
        metadata={
            "description": "Per-epoch loss and metric history",
            "example": [{"epoch": 1, "max_epochs": 100, "train_loss": 530.2, "val_loss": 541.7}],
        },
    )
    model_version = ma.fields.String(
        allow_none=True, metadata={"example": "20261127T101500000000Z-autoencoder-3fa2"}
    )
    activated = ma.fields.Boolean(
        allow_none=True, metadata={"example": True, "description": "Did the version become the active one"}
    )
    note = ma.fields.String(
        allow_none=True,
        metadata={
            "example": None,
            "description": "Why the version was registered but not activated (a pinned version, or a "
            "worse held-out metric under AIREC_ACTIVATE=if-better)",
        },
    )
    error = ma.fields.String(allow_none=True, metadata={"example": None})


class RunEnvelopeSchema(ma.Schema):
    run = ma.fields.Nested(RunSchema)


class ConflictSchema(ma.Schema):
    code = ma.fields.Integer(metadata={"example": 409})
    status = ma.fields.String(metadata={"example": "Conflict"})
    message = ma.fields.String(metadata={"example": "A training run is already in progress."})
    run = ma.fields.Nested(RunSchema, allow_none=True)


class RunListQuerySchema(ma.Schema):
    limit = ma.fields.Integer(
        load_default=50, validate=validate.Range(min=1, max=500), metadata={"example": 20}
    )


class RunListSchema(ma.Schema):
    runs = ma.fields.List(ma.fields.Nested(RunSchema))


class EvaluationRequestSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    k = ma.fields.Integer(
        load_default=10,
        strict=True,
        validate=validate.OneOf(EVAL_KS, error="k must be one of the evaluated cut-offs: {choices}"),
        metadata={"example": 10, "description": "A cut-off the model was evaluated at when trained"},
    )


def refit_field() -> ma.fields.Dict:
    """`refit: {units, seconds}` of a model version, or null when AIREC_TRAIN_REFIT was off."""
    return ma.fields.Dict(
        allow_none=True,
        metadata={
            "example": {"units": 943, "seconds": 4.2},
            "description": "Set when the model is the configuration chosen on validation, fitted again on "
            "every unit (AIREC_TRAIN_REFIT); the held-out evaluation, from units the choice never saw, "
            "estimates it",
        },
    )


class MetricsSchema(ma.Schema):
    hit_rate = ma.fields.Float(metadata={"example": 0.42})
    ndcg = ma.fields.Float(metadata={"example": 0.21})
    recall = ma.fields.Float(metadata={"example": 0.35})


class EvaluationSchema(ma.Schema):
    model_version = ma.fields.String(metadata={"example": "20261127T101500000000Z-autoencoder-3fa2"})
    algorithm = ma.fields.String(metadata={"example": "autoencoder"})
    protocol = ma.fields.String(
        metadata={"example": "strong", "description": "strong (80/20 fold-in) or loo"}
    )
    k = ma.fields.Integer(metadata={"example": 10})
    units = ma.fields.Integer(metadata={"example": 94, "description": "Held-out units evaluated"})
    model = ma.fields.Nested(MetricsSchema)
    popularity = ma.fields.Nested(MetricsSchema)
    refit = refit_field()
    feedback = ma.fields.Dict(
        metadata={
            "example": {
                "event_weights": {"cart": 3.0, "purchase": 5.0, "view": 1.0},
                "negative_types": ["dislike"],
            },
            "description": "The typed feedback the model was trained with: AIREC_EVENT_WEIGHTS (a cell takes "
            "its events' largest weight; unnamed types weigh 1) and AIREC_NEGATIVE_TYPES (a pair whose "
            "latest event is negative is left out).",
        }
    )
