"""Deleting a user or an item, and everything stored about a user as one streamed JSON document.

Deletion goes through airec.privacy.batches (small transactions beside live ingest), over the tables
airec.privacy.registry names; the ledger notes it so model versions trained before it are marked, and a
retraining run is queued (airec.privacy.retrain) so the served model forgets it too.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterator
from typing import IO, Any

import peewee

from airec.catalogue.service import record_change
from airec.db import atomic_write, database
from airec.privacy import ledger
from airec.privacy.batches import Removed, delete_batches, prune_candidates, q, remove_unreferenced
from airec.privacy.registry import USER_ROWS, Owned
from airec.tables import Interaction, Item, ItemMeta, Record, User, utcnow

log = logging.getLogger(__name__)

#: Rows read per query while streaming a user's data (keyset pages: memory stays flat).
PAGE = 2000


class NotFound(LookupError):
    """No such user or item: nothing was changed."""


def user_id(name: str) -> int | None:
    return User.select(User.id).where(User.name == name).scalar()


def delete_user(name: str) -> tuple[dict[str, Any], Removed]:
    """Remove every row of the user (USER_ROWS), then the user. Raises NotFound when unknown."""
    uid = user_id(name)
    if uid is None and not _named_anywhere(name):
        raise NotFound(f"No user {name!r}: nothing was deleted.")
    removed = Removed()
    for owned in USER_ROWS:
        if owned.by_name or uid is not None:
            owner = name if owned.by_name else uid
            delete_batches(owned, f"{q(owned.column)} = {database.obj.param}", [owner], removed)
    removed.users.discard(uid)  # deleted below, whatever it holds by then
    prune_candidates(removed)

    def finish() -> None:
        if uid is not None:
            # The user's row first: that waits for any batch holding it (a record naming the user, or
            # the get-or-create's lock), then its records cascade, and the statements below see what
            # such a batch stored. A later batch no longer finds the user and creates it afresh.
            User.delete().where(User.id == uid).execute()
            _sweep(Interaction.user == uid, removed)
        ledger.record("user", removed.counts.get("interactions", 0), removed.min_interaction_id)

    atomic_write(finish)
    _log_batches("user", removed)
    return {"user": name, "removed": _counts(removed, other="items")}, removed


def _sweep(where: peewee.Expression, removed: Removed) -> None:
    """Inside the deletion's last transaction, after the user's or item's row is gone: its interactions
    stored since the last batch (by a batch that committed meanwhile), and the records they leave empty.
    On PostgreSQL interactions have no foreign keys (migration 014), so no cascade does this; on SQLite
    the cascade already did and this finds nothing."""
    rows = list(
        Interaction.delete().where(where).returning(Interaction.id, Interaction.record).tuples().execute()
    )
    if not rows:
        return
    removed.add("interactions", len(rows))
    removed.saw_interactions(row[0] for row in rows)
    removed.add("records", remove_unreferenced(Record, [(Interaction, "record_id")], [r[1] for r in rows]))


def _named_anywhere(name: str) -> bool:
    """Whether a table that names users by name (impressions) still holds rows of this one."""
    for owned in USER_ROWS:
        if (
            owned.by_name
            and owned.table.select().where(owned.table._meta.columns[owned.column] == name).exists()
        ):
            return True
    return False


def delete_item(name: str) -> tuple[dict[str, Any], Removed]:
    """Remove every interaction with the item (ITEM_ROWS), the item and its catalogue entry. Raises
    NotFound when neither an interaction nor the catalogue names it."""
    from airec.privacy.registry import ITEM_ROWS

    iid = Item.select(Item.id).where(Item.name == name).scalar()
    described = ItemMeta.select().where(ItemMeta.name == name).exists()
    if iid is None and not described:
        raise NotFound(
            f"No item {name!r}: neither an interaction nor the catalogue names it; nothing was deleted."
        )
    removed = Removed()
    if iid is not None:
        for owned in ITEM_ROWS:
            delete_batches(owned, f"{q(owned.column)} = {database.obj.param}", [iid], removed)
        removed.items.discard(iid)
        prune_candidates(removed)

    def finish() -> int:
        if iid is not None:
            Item.delete().where(Item.id == iid).execute()  # waits for batches holding it (see above)
            _sweep(Interaction.item == iid, removed)
        ledger.record("item", removed.counts.get("interactions", 0), removed.min_interaction_id)
        entries = ItemMeta.delete().where(ItemMeta.name == name).execute()
        if entries:
            record_change([name])
        return entries

    removed.add("catalogue", atomic_write(finish))
    _log_batches("item", removed)
    return {"item": name, "removed": _counts(removed, other="users")}, removed


def _log_batches(kind: str, removed: Removed) -> None:
    longest_ms = round(removed.longest_batch_seconds * 1000, 1)
    median_ms = round(removed.median_batch_seconds() * 1000, 1)
    p99_ms = round(removed.percentile_batch_seconds(0.99) * 1000, 1)
    log.info(
        "%s deleted: %d interactions in %d batches, each holding its transaction %.1f ms (median), "
        "%.1f ms (99th percentile), %.1f ms at most",
        kind,
        removed.counts.get("interactions", 0),
        removed.batches,
        median_ms,
        p99_ms,
        longest_ms,
        extra={
            "batches": removed.batches,
            "longest_batch_ms": longest_ms,
            "median_batch_ms": median_ms,
            "p99_batch_ms": p99_ms,
        },
    )


def _counts(removed: Removed, *, other: str) -> dict[str, int]:
    """The answer's counts: the registry's keys, records, and the other side's rows left without data."""
    counts = {key: n for key, n in removed.counts.items() if not key.startswith("orphaned_")}
    counts.setdefault("interactions", 0)
    counts.setdefault("records", 0)
    counts[other] = removed.counts.get(f"orphaned_{other}", 0)
    return counts


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite hands back text for some stored values
        value = dt.datetime.fromisoformat(value)
    return value.isoformat() + "Z"


def _interaction_pages(uid: int) -> Iterator[list[dict[str, Any]]]:
    after = 0
    while True:
        rows = list(
            Interaction.select(Interaction.id, Item.name, Record.id, Record.timestamp, Record.created_at)
            .join(Item, on=(Interaction.item == Item.id))
            .switch(Interaction)
            .join(Record, on=(Interaction.record == Record.id))
            .where((Interaction.user == uid) & (Interaction.id > after))
            .order_by(Interaction.id)
            .limit(PAGE)
            .tuples()
        )
        if not rows:
            return
        yield [
            {"id": i, "item": item, "record": rec, "timestamp": _iso(ts), "stored_at": _iso(stored)}
            for i, item, rec, ts, stored in rows
        ]
        after = rows[-1][0]


def _generic_pages(owned: Owned, owner: int | str) -> Iterator[list[dict[str, Any]]]:
    """Rows of any registered table: its columns, item ids as item names, the user column left out."""
    table = owned.table
    pk = table._meta.primary_key
    column = next(f for f in table._meta.sorted_fields if f.column_name == owned.column)
    after = None
    while True:
        query = table.select().where(column == owner)
        if after is not None:
            query = query.where(pk > after)
        rows = list(query.order_by(pk).limit(PAGE).dicts())
        if not rows:
            return
        names = _item_names(table, rows)
        yield [_plain(table, row, owned.column, names) for row in rows]
        after = rows[-1][pk.name]


def _item_names(table: type[peewee.Model], rows: list[dict]) -> dict[int, str]:
    fields = [
        f for f in table._meta.sorted_fields if isinstance(f, peewee.ForeignKeyField) and f.rel_model is Item
    ]
    ids = {row[f.name] for f in fields for row in rows if row.get(f.name) is not None}
    return dict(Item.select(Item.id, Item.name).where(Item.id.in_(list(ids))).tuples()) if ids else {}


def _plain(table: type[peewee.Model], row: dict, owner_column: str, names: dict[int, str]) -> dict:
    out = {}
    for f in table._meta.sorted_fields:
        if f.column_name == owner_column:
            continue
        value = row.get(f.name)
        if isinstance(f, peewee.ForeignKeyField) and f.rel_model is Item:
            value = names.get(value)
        elif isinstance(value, dt.datetime):
            value = _iso(value)
        out[f.name] = value
    return out


def user_data(name: str, uid: int) -> Iterator[str]:
    """Everything stored about the user as one JSON document, in pieces: the header, then each
    registered table's rows a page at a time (a million interactions never sit in memory at once)."""
    yield "{" + f'"user":{json.dumps(name, ensure_ascii=False)},"exported_at":"{_iso(utcnow())}"'
    for owned in USER_ROWS:
        if not owned.exported:
            continue
        yield f',"{owned.key}":['
        owner = name if owned.by_name else uid
        pages = _interaction_pages(uid) if owned.table is Interaction else _generic_pages(owned, owner)
        first = True
        for page in pages:
            text = ",".join(json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in page)
            yield text if first else "," + text
            first = False
        yield "]"
    yield "}\n"


def write_user_data(out: IO[str], name: str) -> dict[str, Any]:
    """`airec export FILE --user NAME`: the document GET /api/v1/users/NAME/data answers. Raises
    NotFound for an unknown user and ValueError for a name no user can have."""
    from airec.ingestion.service import name_problem

    problem = name_problem(name)
    if problem:
        raise ValueError(f"--user: {problem}")
    uid = user_id(name)
    if uid is None:
        raise NotFound(f"No user {name!r}.")
    for piece in user_data(name, uid):
        out.write(piece)
    return {"user": name, "interactions": Interaction.select().where(Interaction.user == uid).count()}


def interaction_count(uid: int) -> int:
    """How many interactions a deletion of this user would remove (the console's confirmation)."""
    return Interaction.select().where(Interaction.user == uid).count()
