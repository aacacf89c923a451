"""AIREC_RETENTION_DAYS: interactions older than that are deleted, through the same batches as a user's
deletion. A record's age is its `timestamp` (when the user acted), or where it has none, when airec
stored it (`created_at`). Users and items left without any interaction go too, so stats,
/listUserCount and /listItemCount follow."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airec.db import atomic_write
from airec.privacy import ledger
from airec.privacy.batches import Removed, _in, delete_batches, prune_candidates, q, remove_unreferenced
from airec.privacy.registry import Owned
from airec.tables import Interaction, Record, utcnow

log = logging.getLogger(__name__)

#: Old records examined per step (walking the records' primary key once, so the whole pass is linear).
RECORDS_PER_STEP = 500

_OLD_INTERACTIONS = Owned(Interaction, "record_id", "interactions", empties=Record)


def cutoff(days: int, now: dt.datetime | None = None) -> dt.datetime:
    return (now or utcnow()) - dt.timedelta(days=days)


def purge(days: int, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """Delete the interactions (and records) older than `days` before `now`; returns the counts."""
    before = cutoff(days, now)
    old = (Record.timestamp < before) | (Record.timestamp.is_null() & (Record.created_at < before))
    removed = Removed()
    after = 0
    while True:
        ids = [
            rid
            for (rid,) in Record.select(Record.id)
            .where((Record.id > after) & old)
            .order_by(Record.id)
            .limit(RECORDS_PER_STEP)
            .tuples()
        ]
        if not ids:
            break
        delete_batches(_OLD_INTERACTIONS, f"{q('record_id')} IN {_in(ids)}", ids, removed)
        removed.add(
            "records",
            atomic_write(lambda ids=ids: remove_unreferenced(Record, [(Interaction, "record_id")], ids)),
        )
        prune_candidates(removed)
        after = ids[-1]
    interactions = removed.counts.get("interactions", 0)
    if interactions:
        atomic_write(lambda: ledger.record("retention", interactions, removed.min_interaction_id))
    result = {
        "before": before,
        "interactions": interactions,
        "records": removed.counts.get("records", 0),
        "users": removed.counts.get("orphaned_users", 0),
        "items": removed.counts.get("orphaned_items", 0),
    }
    log.info("retention: deleted %d interactions stored before %s", interactions, before.isoformat())
    return result
