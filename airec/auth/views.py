"""Manage API keys over HTTP (admin only): list, create (the key is shown once), revoke."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort

from airec.audit import service as audit
from airec.auth import service
from airec.auth.schemas import CreatedKeySchema, KeyCreateSchema, KeyListSchema, KeySchema
from airec.extensions import Blueprint

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="API keys (admin).")


@blp.route("/keys")
class Keys(MethodView):
    @blp.response(200, KeyListSchema)
    def get(self):
        """Every live key: name, role, prefix, created and last used. Never the key."""
        return {"keys": [service.describe(row) for row in service.list_keys()]}

    @blp.arguments(KeyCreateSchema)
    @blp.response(201, CreatedKeySchema)
    @blp.alt_response(409, description="A key with that name exists")
    def post(self, body):
        """Create a key. The response is the only time the key is shown."""
        try:
            row, key = service.create_key(name=body["name"], role=body["role"])
        except service.KeyProblem as exc:
            abort(exc.status, message=str(exc))
        audit.record(audit.Action.KEY_CREATED, row.name, details={"role": row.role})
        return {**service.describe(row), "key": key}


@blp.route("/keys/<string:name>")
class Key(MethodView):
    @blp.response(200, KeySchema)
    @blp.alt_response(404, description="No key with that name")
    def delete(self, name: str):
        """Revoke a key now: the next request with it gets 401."""
        try:
            row = service.revoke_key(name)
        except service.KeyProblem as exc:
            abort(exc.status, message=str(exc))
        audit.record(audit.Action.KEY_REVOKED, row.name)
        return service.describe(row)
