"""The routes an impression comes from, defined once."""

from __future__ import annotations

from enum import StrEnum


class Route(StrEnum):
    RECOMMENDATIONS = "recommendations"  # POST /api/v1/recommendations
    USER = "user"  # GET /api/v1/users/<user>/recommendations
    SIMILAR = "similar"  # GET /api/v1/items/<item>/similar
    PROPOSE = "propose"  # POST /proposeInteraction


#: The type a record has when it names none (stored as NULL).
DEFAULT_TYPE = "interaction"


class Span(StrEnum):
    """The periods impressions are counted by (impression_counts)."""

    HOUR = "hour"
    DAY = "day"
