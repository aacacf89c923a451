"""The item catalogue: what a shop says about its items (categories, labels, visibility, properties),
and the rules every recommendation answer obeys because of it (airec/catalogue/masks.py)."""

from __future__ import annotations

from enum import StrEnum

#: At most this many categories, and as many labels, on one item.
MAX_TAGS = 100
#: The largest `properties` object, in bytes of compact UTF-8 JSON.
MAX_PROPERTIES_BYTES = 4096
#: The most items one bulk upsert may carry.
MAX_BULK_ITEMS = 10_000


class HiddenReason(StrEnum):
    """Why an item is not recommendable right now."""

    HIDDEN = "hidden"
    NOT_YET_AVAILABLE = "not_yet_available"
    NO_LONGER_AVAILABLE = "no_longer_available"
