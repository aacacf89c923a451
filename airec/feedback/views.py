"""Online take rates: what users took of what they were shown."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView

from airec.extensions import Blueprint
from airec.feedback.schemas import OnlineQuerySchema, OnlineStatsSchema
from airec.feedback.stats import online_stats

blp = Blueprint(
    "feedback", __name__, url_prefix="/api/v1", description="Impressions, takes and online take rates."
)


@blp.route("/stats/online")
class OnlineStats(MethodView):
    @blp.arguments(OnlineQuerySchema, location="query")
    @blp.response(200, OnlineStatsSchema)
    def get(self, query: dict):
        """Impressions, takes and take rate (95% Wilson interval), overall and by position.

        Counted by the hour (`since` rounded down, `until` up) from pre-aggregated counts; filter by
        `model_version`, `variant` or `route`. A take is an impression a later event took: one naming
        its recommendation_id and one of its items, or, without an id, the same user acting on an item
        shown within AIREC_ATTRIBUTION_HOURS; at most once, never by a negative type.
        """
        return online_stats(keep_days=current_app.config["AIREC"].impression_days, **query)
