"""GET /api/v1/models, GET/DELETE /api/v1/models/<version>, POST .../<version>/activate, POST .../unpin."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import abort

from airec.extensions import Blueprint
from airec.registry import service
from airec.registry.schemas import (
    ActivationSchema,
    ModelVersionSchema,
    UnpinSchema,
    VersionListQuerySchema,
    VersionListSchema,
)

blp = Blueprint(
    "models",
    __name__,
    url_prefix="/api/v1",
    description="Trained model versions: list, inspect, activate (promote or roll back), archive.",
)


def _fail(exc: Exception):
    if isinstance(exc, service.VersionNotFound):
        abort(404, message=str(exc))
    if isinstance(exc, service.VersionConflict):
        abort(409, message=str(exc))
    if isinstance(exc, service.VersionCorrupt):
        abort(422, message=str(exc))
    raise exc


@blp.route("/models")
class Models(MethodView):
    @blp.arguments(VersionListQuerySchema, location="query")
    @blp.response(200, VersionListSchema)
    def get(self, query):
        """Model versions, newest first, with data counts, validation and held-out evaluation."""
        return service.list_versions(**query)


@blp.route("/models/<string:version>")
class ModelVersion(MethodView):
    @blp.response(200, ModelVersionSchema)
    @blp.alt_response(404, description="No such version")
    def get(self, version):
        """One model version."""
        try:
            return service.get_version(version)
        except service.VersionNotFound as exc:
            _fail(exc)

    @blp.response(200, ModelVersionSchema)
    @blp.alt_response(404, description="No such version")
    @blp.alt_response(409, description="The version is the active one: activate another first")
    def delete(self, version):
        """Archive a version: delete its files from disk; it stays listed as archived."""
        try:
            return service.archive(version)
        except (service.VersionNotFound, service.VersionConflict) as exc:
            _fail(exc)


@blp.route("/models/unpin")
class Unpin(MethodView):
    @blp.response(200, UnpinSchema)
    def post(self):
        """Release the pin: training runs may activate new versions again (AIREC_ACTIVATE decides)."""
        return service.unpin()


@blp.route("/models/<string:version>/activate")
class Activate(MethodView):
    @blp.response(200, ActivationSchema)
    @blp.alt_response(404, description="No such version")
    @blp.alt_response(409, description="Archived: its files are gone")
    @blp.alt_response(422, description="The folder fails checksum verification or cannot be loaded")
    def post(self, version):
        """Serve and pin this version on every worker (within a few seconds): promotion or rollback.

        While pinned, training runs register new versions but do not activate them."""
        try:
            return service.activate(version)
        except (service.VersionNotFound, service.VersionConflict, service.VersionCorrupt) as exc:
            _fail(exc)
