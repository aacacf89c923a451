"""DELETE a user or an item (admin), and GET everything stored about a user (admin). Names may hold
'/', so the routes take the rest of the path."""

from __future__ import annotations

from flask import Response, current_app, stream_with_context
from flask.views import MethodView
from flask_smorest import abort

from airec.audit import service as audit
from airec.extensions import Blueprint
from airec.ingestion.service import name_problem
from airec.privacy import retrain, service
from airec.privacy.schemas import ItemDeletedSchema, UserDeletedSchema

USER_DATA_EXAMPLE = {
    "user": "a/b",
    "exported_at": "2026-12-03T07:00:00Z",
    "interactions": [
        {
            "id": 1041,
            "item": "sku-123",
            "record": 377,
            "timestamp": "2026-11-30T18:02:11Z",
            "stored_at": "2026-11-30T18:02:12.201Z",
        }
    ],
}

blp = Blueprint(
    "privacy",
    __name__,
    url_prefix="/api/v1",
    description="Data rights: delete a user or an item; everything stored about a user.",
)


def checked(field: str, name: str) -> str:
    problem = name_problem(name)
    if problem:
        abort(422, message=f"Invalid input. {field}: {problem}", errors={field: [problem]})
    return name


@blp.route("/users/<path:user>")
class User(MethodView):
    @blp.response(200, UserDeletedSchema)
    @blp.alt_response(404, description="No such user: nothing changed")
    def delete(self, user):
        """Delete a user: every interaction, record (and impression) of theirs, in small batches beside
        live ingest. Models trained before keep what they learned until retrained (see /api/v1/models)."""
        try:
            answer, _ = service.delete_user(checked("user", user))
        except service.NotFound as exc:
            abort(404, message=str(exc))
        audit.record(audit.Action.USER_DELETED, audit.hashed_name(user), details=answer["removed"])
        retrain.note_deletion(current_app.config["AIREC"])
        return answer


@blp.route("/users/<path:user>/data")
class UserData(MethodView):
    @blp.doc(
        responses={
            "200": {
                "description": "One JSON document: the user, then their interactions",
                "content": {"application/json": {"example": USER_DATA_EXAMPLE}},
            }
        }
    )
    @blp.alt_response(404, description="No such user")
    def get(self, user):
        """Everything stored about a user as one JSON document (streamed: interactions with items, record
        ids, timestamps and when they were stored)."""
        uid = service.user_id(checked("user", user))
        if uid is None:
            abort(404, message=f"No user {user!r}.")
        return Response(stream_with_context(service.user_data(user, uid)), mimetype="application/json")


@blp.route("/items/<path:item>", endpoint="Item", methods=["DELETE"])
class Item(MethodView):
    @blp.response(200, ItemDeletedSchema)
    @blp.alt_response(404, description="Neither an interaction nor the catalogue names it: nothing changed")
    def delete(self, item):
        """Delete an item: every interaction with it, in small batches, and its catalogue entry."""
        try:
            answer, _ = service.delete_item(checked("item", item))
        except service.NotFound as exc:
            abort(404, message=str(exc))
        audit.record(audit.Action.ITEM_DELETED, item, details=answer["removed"])
        retrain.note_deletion(current_app.config["AIREC"])
        return answer
