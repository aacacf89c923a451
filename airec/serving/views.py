"""Basket completion: which items complete this set."""

from __future__ import annotations

from flask import current_app
from flask.views import MethodView
from flask_smorest import abort

from airec.extensions import Blueprint
from airec.feedback.kinds import Route
from airec.feedback.service import issue
from airec.serving import service
from airec.serving.schemas import (
    RecommendationQuerySchema,
    RecommendationSchema,
    SimilarItemsSchema,
    SimilarQuerySchema,
    UserRecommendationQuerySchema,
    UserRecommendationSchema,
)

blp = Blueprint(
    "serving", __name__, url_prefix="/api/v1", description="Recommendations from the active model."
)


def as_json(result: dict):
    """The answer as JSON without a marshmallow dump: the service builds exactly the documented shape
    from plain str/float/bool values (tests/test_serving_fast.py holds it equal to the schema's dump),
    and the dump was a tenth of a recommendation's time. The app's JSON provider writes it by orjson.
    flask-smorest passes a Response through."""
    return current_app.json.response(result)


@blp.route("/recommendations")
class Recommendations(MethodView):
    @blp.arguments(RecommendationQuerySchema)
    @blp.response(200, RecommendationSchema)
    def post(self, query):
        """The k items most likely to complete a set of items, with scores.

        At most AIREC_MAX_HISTORY items (default 500) per set: a longer one is a 422 that says so (a
        set has no order that says which items to drop). `explain=true` names, for each proposal, the
        inputs that raised its score most among the last 50 of `items` (send them oldest first).
        Every answer has a `recommendation_id`: send it with the events it leads to. `user` (optional)
        names who is shown the answer, so events of that user without an id are attributed too.
        """
        user = query.pop("user", None)
        answer = service.recommend(**query, chosen=service.choose(user))
        return as_json(issue(answer, Route.RECOMMENDATIONS, user))


@blp.route("/users/<string:user>/recommendations")
class UserRecommendations(MethodView):
    @blp.arguments(UserRecommendationQuerySchema, location="query")
    @blp.response(200, UserRecommendationSchema)
    @blp.alt_response(404, description="No user by that name")
    def get(self, query, user):
        """The k items a user is most likely to want next, from the history stored for them.

        Items the user already has are never proposed. Scores come from the user's most recent
        AIREC_MAX_HISTORY items (default 500; `history_used` says how many), so a long history costs
        no more than that; `explain=true` names inputs among the 50 most recent. Without a model,
        popular items are proposed (`fallback: popularity`).
        """
        try:
            settings = current_app.config["AIREC"]
            answer = service.recommend_for_user(
                user=user,
                max_history=settings.max_history,
                negative_types=settings.negative_type_set,
                **query,
            )
            return as_json(issue(answer, Route.USER, user))
        except service.UnknownUser:
            abort(404, message=f"No user {user!r}: record interactions for them first.")


@blp.route("/items/<string:item>/similar")
class SimilarItems(MethodView):
    @blp.arguments(SimilarQuerySchema, location="query")
    @blp.response(200, SimilarItemsSchema)
    @blp.alt_response(404, description="The active model does not know the item")
    @blp.alt_response(409, description="No model is active yet")
    def get(self, query, item):
        """Items that go with this one, by the active model (the completion of the one-item set).

        There is no popularity fallback here: popular items are not "similar", so without an active
        model the answer is 409 and the client should train first.
        """
        if service.active_model() is None:
            abort(409, message="No model is active yet: train one (POST /api/v1/training) first.")
        result = service.similar_items(item=item, **query, chosen=service.choose(None))
        if result is None:
            abort(404, message=f"Item {item!r} is not known to the active model (new or never seen).")
        return as_json(issue(result, Route.SIMILAR))
