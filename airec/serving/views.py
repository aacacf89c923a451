"""Basket completion: which items complete this set."""

from __future__ import annotations

from flask.views import MethodView
from flask_smorest import Blueprint

from airec.serving import service
from airec.serving.schemas import RecommendationQuerySchema, RecommendationSchema

blp = Blueprint(
    "serving", __name__, url_prefix="/api/v1", description="Recommendations from the active model."
)


@blp.route("/recommendations")
class Recommendations(MethodView):
    @blp.arguments(RecommendationQuerySchema)
    @blp.response(200, RecommendationSchema)
    def post(self, query):
        """The k items most likely to complete a set of items, with scores."""
        return service.recommend(**query)
