"""Answers of the deletion routes (the user's data document is streamed, see views.py)."""

import marshmallow as ma


class UserDeletedSchema(ma.Schema):
    user = ma.fields.String(metadata={"example": "u42"})
    removed = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        metadata={
            "example": {"interactions": 120, "records": 35, "items": 1},
            "description": "Rows removed per table; `items`: items no interaction names any more",
        },
    )


class ItemDeletedSchema(ma.Schema):
    item = ma.fields.String(metadata={"example": "sku-123"})
    removed = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        metadata={
            "example": {"interactions": 940, "records": 12, "catalogue": 1, "users": 0},
            "description": "Rows removed per table; `catalogue`: its catalogue entry; `users`: users left "
            "without any interaction",
        },
    )
