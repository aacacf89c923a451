"""Reading and writing the catalogue. Every write records the names it changed in the change log and
moves one version row (`epoch:seq`) in the same transaction; each worker polls that row
(airec/catalogue/masks.py) and catches up by reading the names changed since its masks' sequence."""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
import secrets
import time
from collections.abc import Iterable

import orjson
import peewee

from airec.catalogue import HiddenReason
from airec.db import atomic_write, is_sqlite
from airec.ingestion.service import to_utc_naive
from airec.tables import CatalogueChange, Interaction, Item, ItemMeta, State, utcnow

#: The State row whose value (`epoch:seq`) changes on every catalogue write.
VERSION_KEY = "catalogue_version"
#: The change log keeps the last KEEP_CHANGES writes, none older than KEEP_CHANGES_FOR; a worker further
#: behind rebuilds its masks from the table.
KEEP_CHANGES = 1000
KEEP_CHANGES_FOR = dt.timedelta(minutes=10)
FIELDS = ("categories", "labels", "hidden", "available_from", "available_until", "properties")
DEFAULTS: dict = {
    "categories": [],
    "labels": [],
    "hidden": False,
    "available_from": None,
    "available_until": None,
    "properties": {},
}
#: Rows per INSERT: 8 columns each, under SQLite's old limit of 999 bound variables.
_ROWS_PER_STATEMENT = 100


class CatalogueError(ValueError):
    """A description that cannot be stored; `field` names where the problem is."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def hidden_reason(
    hidden: bool, start: dt.datetime | None, end: dt.datetime | None, now: dt.datetime
) -> HiddenReason | None:
    """Why an item is not recommendable at `now` (naive UTC), or None when it is."""
    if hidden:
        return HiddenReason.HIDDEN
    if start is not None and now < start:
        return HiddenReason.NOT_YET_AVAILABLE
    if end is not None and now >= end:
        return HiddenReason.NO_LONGER_AVAILABLE
    return None


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.replace(tzinfo=dt.UTC).isoformat()


def _fields_of(meta: ItemMeta | None) -> dict:
    if meta is None:
        return dict(DEFAULTS)
    return {name: getattr(meta, name) for name in FIELDS}


def describe(name: str) -> dict | None:
    """The item's metadata, interaction count and visibility; None if neither described nor stored."""
    meta = ItemMeta.get_or_none(ItemMeta.name == name)
    item_id = Item.select(Item.id).where(Item.name == name).scalar()
    if meta is None and item_id is None:
        return None
    count = Interaction.select().where(Interaction.item == item_id).count() if item_id is not None else 0
    fields = _fields_of(meta)
    reason = hidden_reason(fields["hidden"], fields["available_from"], fields["available_until"], utcnow())
    return {
        "item": name,
        **fields,
        "available_from": iso(fields["available_from"]),
        "available_until": iso(fields["available_until"]),
        "described": meta is not None,
        "count": count,
        "visible": reason is None,
        "hidden_reason": reason.value if reason else None,
    }


def _normalized(fields: dict) -> dict:
    out = dict(fields)
    for moment in ("available_from", "available_until"):
        if moment in out:
            out[moment] = to_utc_naive(out[moment])
    for tags in ("categories", "labels"):
        if tags in out:
            out[tags] = list(dict.fromkeys(out[tags]))
    return out


def _check_window(fields: dict) -> None:
    start, end = fields["available_from"], fields["available_until"]
    if start is not None and end is not None and end < start:
        raise CatalogueError("available_until", f"Must not be before available_from ({iso(start)}).")


def new_epoch() -> str:
    """A fresh history's name: a version token of another epoch means 'rebuild from the table'."""
    return f"{time.time_ns()}-{secrets.token_hex(4)}"


def parse_version(token: str | None) -> tuple[str | None, int | None]:
    """(epoch, sequence) of a version token `epoch:seq`; (token, None) for a token without a sequence
    (one written before the change log existed)."""
    if token is None:
        return None, None
    epoch, _, seq = token.rpartition(":")
    if not epoch or not seq.isdigit():
        return token, None
    return epoch, int(seq)


def _locked_version() -> tuple[str, int]:
    """The version row's (epoch, sequence), locked until the transaction ends: catalogue writers take
    turns from here to their commit, so sequence numbers commit in order (a worker that sees S has
    every change up to S). SQLite's IMMEDIATE transaction already holds the only write lock."""
    query = State.select(State.value).where(State.key == VERSION_KEY)
    if not is_sqlite():
        query = query.for_update()
    token = query.scalar()
    if token is None:  # the first write ever (or a restore without the row)
        State.insert(key=VERSION_KEY, value=None, updated_at=utcnow()).on_conflict_ignore().execute()
        token = query.scalar()
    epoch, seq = parse_version(token)
    if epoch is None or seq is None:
        epoch, seq = new_epoch(), CatalogueChange.select(peewee.fn.MAX(CatalogueChange.seq)).scalar() or 0
    return epoch, seq


def record_change(names: Iterable[str] | None) -> int:
    """Mark `names` changed (None: the whole catalogue), inside the writing transaction: the next
    sequence number goes into the change log and the version row. Prunes the log. Returns the
    sequence."""
    epoch, seq = _locked_version()
    seq += 1
    listed = None if names is None else list(dict.fromkeys(names))
    now = utcnow()
    CatalogueChange.insert(
        seq=seq,
        at=now,
        count=-1 if listed is None else len(listed),
        names=None if listed is None else orjson.dumps(listed).decode(),
    ).execute()
    State.update(value=f"{epoch}:{seq}", updated_at=now).where(State.key == VERSION_KEY).execute()
    CatalogueChange.delete().where(
        (CatalogueChange.seq <= seq - KEEP_CHANGES) | (CatalogueChange.at < now - KEEP_CHANGES_FOR)
    ).execute()
    return seq


def start_new_history() -> None:
    """After a restore: the change log no longer describes how the workers' masks came to be, so it is
    emptied and the version takes a new epoch (every worker rebuilds from the table once)."""
    _, seq = _locked_version()
    seq = max(seq, CatalogueChange.select(peewee.fn.MAX(CatalogueChange.seq)).scalar() or 0)
    CatalogueChange.delete().execute()
    State.update(value=f"{new_epoch()}:{seq}", updated_at=utcnow()).where(State.key == VERSION_KEY).execute()


def catalogue_version() -> str | None:
    """The current version token `epoch:seq` (None before the first write): one primary-key read."""
    return State.select(State.value).where(State.key == VERSION_KEY).scalar()


def changes_after(seq: int, upto: int, most: int) -> list[str] | None:
    """The names changed after sequence `seq` up to `upto`, or None when the log cannot say (pruned past
    `seq`, a whole-catalogue change, or more than `most` names: cheaper to rebuild)."""
    if upto <= seq:
        return []
    counts = list(
        CatalogueChange.select(CatalogueChange.seq, CatalogueChange.count)
        .where((CatalogueChange.seq > seq) & (CatalogueChange.seq <= upto))
        .order_by(CatalogueChange.seq)
        .tuples()
    )
    if len(counts) != upto - seq or any(n < 0 for _, n in counts) or sum(n for _, n in counts) > most:
        return None
    names: dict[str, None] = {}
    for (listed,) in (
        CatalogueChange.select(CatalogueChange.names)
        .where((CatalogueChange.seq > seq) & (CatalogueChange.seq <= upto))
        .tuples()
    ):
        names.update(dict.fromkeys(orjson.loads(listed)))
    return list(names)


def _upsert(rows: list[dict]) -> None:
    now = utcnow()
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = [{**row, "updated_at": now} for row in rows[start : start + _ROWS_PER_STATEMENT]]
        ItemMeta.insert_many(chunk).on_conflict(
            conflict_target=[ItemMeta.name],
            preserve=[getattr(ItemMeta, name) for name in (*FIELDS, "updated_at")],
        ).execute()


def replace(name: str, fields: dict) -> bool:
    """PUT: store exactly `fields` (the others take their defaults). True when the item was new."""
    full = {**DEFAULTS, **_normalized(fields)}
    _check_window(full)

    def write() -> bool:
        created = not ItemMeta.select().where(ItemMeta.name == name).exists()
        _upsert([{"name": name, **full}])
        record_change([name])
        return created

    return atomic_write(write)


def update(name: str, fields: dict) -> bool:
    """PATCH: change only `fields`, keep the others as stored. True when the item was new."""
    changes = _normalized(fields)

    def write() -> bool:
        meta = ItemMeta.get_or_none(ItemMeta.name == name)
        merged = {**_fields_of(meta), **changes}
        _check_window(merged)
        _upsert([{"name": name, **merged}])
        record_change([name])
        return meta is None

    return atomic_write(write)


def _existing(names: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        found.update(n for (n,) in ItemMeta.select(ItemMeta.name).where(ItemMeta.name.in_(chunk)).tuples())
    return found


def upsert_many(entries: Iterable[dict]) -> dict:
    """Bulk PUT of many items in one transaction: {'created': n, 'updated': m}."""
    rows = []
    for entry in entries:
        fields = {key: value for key, value in entry.items() if key != "item"}
        rows.append({"name": entry["item"], **DEFAULTS, **_normalized(fields)})

    def write() -> dict:
        existing = _existing([row["name"] for row in rows])
        _upsert(rows)
        record_change(row["name"] for row in rows)
        return {"created": len(rows) - len(existing), "updated": len(existing)}

    return atomic_write(write)


def unrecommendable(names: list[str], rules) -> set[str]:
    """Which of `names` no answer may hold under `rules` (masks.Rules) now, read from the table: the
    popularity fallback before any model exists (a short list; with a model, the masks answer)."""
    now = utcnow()
    described: dict[str, ItemMeta] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        described.update((row.name, row) for row in ItemMeta.select().where(ItemMeta.name.in_(chunk)))
    out = set()
    for name in names:
        meta = described.get(name)
        fields = _fields_of(meta)
        reason = hidden_reason(fields["hidden"], fields["available_from"], fields["available_until"], now)
        if reason is not None or not rules.admits(fields["categories"], fields["labels"]):
            out.add(name)
    return out


def _contains(column: peewee.Field, text: str) -> peewee.Expression:
    """Whether a JSON text column holds `text` (case-sensitive on both engines, no LIKE escaping)."""
    needle = peewee.Value(text, converter=False)
    found = peewee.fn.instr(column, needle) if is_sqlite() else peewee.fn.strpos(column, needle)
    return found > 0


def in_category(category: str) -> peewee.Expression:
    """Rows whose categories hold `category` or one of its `/` sub-paths."""
    exact = json.dumps(category)
    return _contains(ItemMeta.categories, exact) | _contains(ItemMeta.categories, exact[:-1] + "/")


def metadata_filter(
    categories: list[str], labels: list[str], hidden: bool | None
) -> peewee.Expression | None:
    """The SQL condition on item_catalogue for the item list's filters (None: no filter)."""
    conditions = []
    if categories:
        conditions.append(functools.reduce(operator.or_, (in_category(c) for c in categories)))
    conditions.extend(_contains(ItemMeta.labels, json.dumps(label)) for label in labels)
    if hidden is True:
        conditions.append(ItemMeta.hidden == True)  # noqa: E712 -- SQL, not Python
    elif hidden is False:
        conditions.append(ItemMeta.hidden.is_null(True) | (ItemMeta.hidden == False))  # noqa: E712
    return functools.reduce(operator.and_, conditions) if conditions else None


def list_items(
    *,
    offset: int,
    limit: int,
    category: list[str] = (),
    label: list[str] = (),
    hidden: bool | None = None,
    name_contains: str = "",
    by_name: bool = False,
) -> tuple[list[dict], int]:
    """One page of items with counts (described items without interactions count 0), most popular
    first, ties by name (`by_name`: in name order only); and how many items pass the filters
    (`name_contains`: the console's search)."""
    condition = metadata_filter(list(category), list(label), hidden)

    def narrowed(query: peewee.ModelSelect, name: peewee.Field, join: bool) -> peewee.ModelSelect:
        if condition is not None:
            if join:
                query = query.switch(Item).join(
                    ItemMeta, peewee.JOIN.LEFT_OUTER, on=(ItemMeta.name == Item.name)
                )
            query = query.where(condition)
        return query.where(_contains(name, name_contains)) if name_contains else query

    count = peewee.fn.COUNT(Interaction.id)
    stored = narrowed(
        Item.select(Item.name.alias("name"), count.alias("count"))
        .join(Interaction, peewee.JOIN.LEFT_OUTER, on=(Interaction.item == Item.id))
        .group_by(Item.id, Item.name),
        Item.name,
        join=True,
    )
    unstored = narrowed(
        ItemMeta.select(ItemMeta.name.alias("name"), peewee.Value(0).alias("count")).where(
            ~peewee.fn.EXISTS(Item.select(Item.id).where(Item.name == ItemMeta.name))
        ),
        ItemMeta.name,
        join=False,
    )
    # The total without the interactions: counting the grouped union would aggregate them twice.
    described_only = unstored.count()
    total = narrowed(Item.select(Item.id), Item.name, join=True).count() + described_only
    if described_only:
        order = [peewee.SQL('"name"').asc()]
        page = (stored + unstored).order_by(*([] if by_name else [peewee.SQL('"count"').desc()]), *order)
    else:  # the usual case, and the query this list had before the catalogue: no union to sort
        page = stored.order_by(*([] if by_name else [count.desc()]), Item.name.asc())
    page = page.offset(offset).limit(limit)
    return [{"item": name, "count": n} for name, n in page.tuples()], total
