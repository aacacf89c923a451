"""Liveness and readiness probes."""

from __future__ import annotations

import flask
import swagger_ui_bundle
from flask.views import MethodView

from airec.extensions import Blueprint
from airec.ops import service
from airec.ops.schemas import HealthSchema, ReadySchema

blp = Blueprint("ops", __name__, description="Liveness and readiness probes.")

#: Swagger UI's files are served from the installed package, so /docs works with no internet access.
docs_assets = flask.Blueprint(
    "docs_assets", __name__, static_folder=swagger_ui_bundle.swagger_ui_path, static_url_path="/docs/static"
)


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self):
        """Process is up (never touches the database)."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema, description="Database unreachable")
    def get(self):
        """Database reachable; says whether a model is loaded."""
        report = service.readiness()
        return report, (200 if report["database"] == "ok" else 503)
