"""The one place that says which tables hold rows of a user or of an item.

Deletion (batches.py) removes, and the user's data document (service.py) lists, every table named here,
in this order. A new table holding per-user or per-item rows (impressions, feedback) is added here, as
`Owned(Table, "user_id", "impressions")`, and deletion and access cover it with no other change.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from airec.tables import Impression, Interaction, Record


@dataclass(frozen=True)
class Owned:
    """Rows of `table` whose `column` holds the user's (or item's) id, named `key` in counts and in
    the user's data document. With `empties`, a parent row of that table (a record) left without any
    row of `table` is removed in the same batch. `exported=False`: deleted, but not listed."""

    table: type[peewee.Model]
    column: str
    key: str
    empties: type[peewee.Model] | None = None
    exported: bool = True
    #: The column holds the user's name, not users.id (impressions name users who may have no row yet).
    by_name: bool = False


#: Rows of a user: their interactions (each emptied record goes with its last one), then their records
#: that held none (a record always holds one interaction at least, unless a deletion emptied it).
USER_ROWS: tuple[Owned, ...] = (
    Owned(Interaction, "user_id", "interactions", empties=Record),
    Owned(Record, "user_id", "records", exported=False),
    Owned(Impression, "user", "impressions", by_name=True),
)

#: Rows of an item: every interaction with it (a record left empty goes too).
ITEM_ROWS: tuple[Owned, ...] = (Owned(Interaction, "item_id", "interactions", empties=Record),)
