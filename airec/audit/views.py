"""GET /api/v1/audit (admin): the audit log, newest first. No route changes or deletes it."""

from __future__ import annotations

from flask.views import MethodView

from airec.audit import service
from airec.audit.schemas import AuditPageSchema, AuditQuerySchema
from airec.extensions import Blueprint

blp = Blueprint("audit", __name__, url_prefix="/api/v1", description="Who changed what (admin).")


@blp.route("/audit")
class Audit(MethodView):
    @blp.arguments(AuditQuerySchema, location="query")
    @blp.response(200, AuditPageSchema)
    def get(self, query):
        """The audit log, newest first, filtered by action, actor and time; page with `before`."""
        return service.entries(**query)
