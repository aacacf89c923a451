"""`airec export`: every stored record as JSON lines in the API's shape, which `airec import --format
jsonl` reads back. The way from one database to another (SQLite to PostgreSQL): export, point
AIREC_DATABASE_URL at the new database, import, train.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import IO

from peewee import JOIN

from airec.tables import Interaction, Item, Record, User

#: Records read per query (keyset pages, so memory stays flat whatever the table size).
PAGE = 5000


def iter_records(page: int | None = None) -> Iterator[dict]:
    """Records in insertion order: {"user"?, "items", "timestamp"?}, items in their stored order."""
    page = page or PAGE
    after = 0
    while True:
        rows = list(
            Record.select(Record.id, Record.timestamp, User.name)
            .join(User, join_type=JOIN.LEFT_OUTER, on=(Record.user == User.id))
            .where(Record.id > after)
            .order_by(Record.id)
            .limit(page)
            .tuples()
        )
        if not rows:
            return
        first, last = rows[0][0], rows[-1][0]
        items: dict[int, list[str]] = {}
        pairs = (
            Interaction.select(Interaction.record, Item.name)
            .join(Item, on=(Interaction.item == Item.id))
            .where(Interaction.record.between(first, last))
            .order_by(Interaction.id)
            .tuples()
        )
        for record_id, name in pairs:
            items.setdefault(record_id, []).append(name)
        for record_id, timestamp, user in rows:
            if record_id not in items:
                continue  # a record whose items were all deleted carries nothing to move
            record: dict = {"items": items[record_id]}
            if user is not None:
                record["user"] = user
            if timestamp is not None:
                record["timestamp"] = _iso(timestamp)
            yield record
        after = last


def _iso(value: dt.datetime | str) -> str:
    if isinstance(value, str):  # SQLite hands back text for some stored values
        value = dt.datetime.fromisoformat(value)
    return value.isoformat() + "Z"


def export_records(out: IO[str]) -> dict:
    """Write every record as one JSON line; returns {"records", "interactions"}."""
    records = interactions = 0
    for record in iter_records():
        out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        records += 1
        interactions += len(record["items"])
    return {"records": records, "interactions": interactions}
