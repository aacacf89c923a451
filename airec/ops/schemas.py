import marshmallow as ma


class HealthSchema(ma.Schema):
    status = ma.fields.String(metadata={"example": "ok"})


class ReadySchema(ma.Schema):
    status = ma.fields.String(metadata={"example": "ready"})
    database = ma.fields.String(metadata={"example": "ok"})
    model_loaded = ma.fields.Boolean(metadata={"example": True})
    model_version = ma.fields.String(allow_none=True, metadata={"example": "20261127-101500-ab12"})
