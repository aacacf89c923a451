"""Counts and item popularity. The interaction export shares its URL with ingestion (see there)."""

from __future__ import annotations

from flask.views import MethodView

from airec.catalogue import service as catalogue_service
from airec.catalogue.schemas import ItemListQuerySchema
from airec.extensions import Blueprint
from airec.readcache import cached_read
from airec.stats import service
from airec.stats.schemas import CountsSchema, DailyQuerySchema, DailySchema, ItemCountSchema

blp = Blueprint("stats", __name__, url_prefix="/api/v1", description="What is stored: counts and popularity.")


@blp.route("/stats")
class Stats(MethodView):
    @cached_read
    @blp.response(200, CountsSchema)
    def get(self):
        """How many users, items, records and interactions are stored."""
        return service.counts()


@blp.route("/stats/daily")
class Daily(MethodView):
    @blp.arguments(DailyQuerySchema, location="query")
    @blp.response(200, DailySchema)
    def get(self, query):
        """Interactions stored per UTC day over the last `days` days, oldest first, zeros included."""
        return {"days": service.interactions_per_day(days=query["days"])}


@blp.route("/items")
class Items(MethodView):
    @cached_read
    @blp.response(200, ItemCountSchema(many=True))
    @blp.arguments(ItemListQuerySchema, location="query")
    @blp.paginate(page_size=100, max_page_size=1000)
    def get(self, query, pagination_parameters):
        """Items with their interaction counts, most popular first (ties by name).

        Items described in the catalogue that no interaction names yet are listed with count 0.
        `category` (any of, sub-paths included), `label` (all of) and `hidden` filter by the catalogue.
        """
        page, total = catalogue_service.list_items(
            offset=pagination_parameters.first_item, limit=pagination_parameters.page_size, **query
        )
        pagination_parameters.item_count = total
        return page
