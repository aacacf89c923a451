"""GET /api/v1/models, GET/DELETE /api/v1/models/<version>, POST .../<version>/activate, POST .../unpin."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort

from airec.audit import service as audit
from airec.extensions import Blueprint
from airec.modelstore import UnsafeName
from airec.versions import service
from airec.versions.schemas import (
    ActivationSchema,
    ModelVersionSchema,
    UnpinSchema,
    VersionListQuerySchema,
    VersionListSchema,
)

blp = Blueprint(
    "versions",
    __name__,
    url_prefix="/api/v1",
    description="Trained model versions: list, inspect, activate (promote or roll back), archive.",
)


def _fail(exc: Exception):
    if isinstance(exc, UnsafeName):
        abort(422, message=str(exc))
    if isinstance(exc, service.VersionNotFound):
        abort(404, message=str(exc))
    if isinstance(exc, service.VersionConflict):
        abort(409, message=str(exc))
    if isinstance(exc, service.VersionCorrupt):
        abort(422, message=str(exc))
    raise exc


@blp.route("/models")
class Versions(MethodView):
    @blp.arguments(VersionListQuerySchema, location="query")
    @blp.response(200, VersionListSchema)
    def get(self, query):
        """Model versions, newest first, with data counts, validation and held-out evaluation."""
        return service.list_versions(**query)


@blp.route("/models/<string:version>")
class Version(MethodView):
    @blp.response(200, ModelVersionSchema)
    @blp.alt_response(404, description="No such version")
    @blp.alt_response(422, description="Not a version name")
    def get(self, version):
        """One model version."""
        try:
            return service.get_version(version)
        except (service.VersionNotFound, UnsafeName) as exc:
            _fail(exc)

    @blp.response(200, ModelVersionSchema)
    @blp.alt_response(404, description="No such version")
    @blp.alt_response(409, description="The version is the active one: activate another first")
    @blp.alt_response(422, description="Not a version name")
    def delete(self, version):
        """Archive a version: delete its files from disk; it stays listed as archived."""
        try:
            archived = service.archive(version)
        except (service.VersionNotFound, service.VersionConflict, UnsafeName) as exc:
            _fail(exc)
        audit.record(audit.Action.MODEL_ARCHIVED, version)
        return archived


@blp.route("/models/unpin")
class Unpin(MethodView):
    @blp.response(200, UnpinSchema)
    def post(self):
        """Release the pin: training runs may activate new versions again (AIREC_ACTIVATE decides)."""
        result = service.unpin()
        audit.record(audit.Action.MODEL_UNPINNED, result["unpinned"])
        return result


@blp.route("/models/<string:version>/activate")
class Activate(MethodView):
    @blp.response(200, ActivationSchema)
    @blp.alt_response(404, description="No such version")
    @blp.alt_response(409, description="Archived: its files are gone")
    @blp.alt_response(422, description="Not a version name, or its folder fails verification or cannot load")
    def post(self, version):
        """Serve and pin this version on every worker (within a few seconds): promotion or rollback.

        While pinned, training runs register new versions but do not activate them."""
        try:
            result = service.activate(version)
        except (service.VersionNotFound, service.VersionConflict, service.VersionCorrupt, UnsafeName) as exc:
            _fail(exc)
        audit.record(
            audit.Action.MODEL_ACTIVATED, version, details={"previous": result["previous"], "pinned": True}
        )
        return result
