"""Reading and writing the catalogue. Every write bumps one version row in the same transaction, which
each worker polls (airec/catalogue/masks.py) to know its masks are stale."""

from __future__ import annotations

import datetime as dt
import functools
import json
import operator
import secrets
import time
from collections.abc import Iterable

import peewee

from airec.catalogue import HiddenReason
from airec.db import atomic_write, is_sqlite
from airec.ingestion.service import to_utc_naive
from airec.tables import Interaction, Item, ItemMeta, State, utcnow

#: The State row whose value changes on every catalogue write.
VERSION_KEY = "catalogue_version"
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


def bump_version() -> None:
    """Mark the catalogue changed (call inside the writing transaction)."""
    token = f"{time.time_ns()}-{secrets.token_hex(4)}"
    State.insert(key=VERSION_KEY, value=token, updated_at=utcnow()).on_conflict(
        conflict_target=[State.key], update={State.value: token, State.updated_at: utcnow()}
    ).execute()


def catalogue_version() -> str | None:
    """The current version token (None before the first write): one primary-key read."""
    return State.select(State.value).where(State.key == VERSION_KEY).scalar()


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
        bump_version()
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
        bump_version()
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
        bump_version()
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
) -> tuple[list[dict], int]:
    """One page of items with counts (described items without interactions count 0), most popular
    first, ties by name; and how many items pass the filters (`name_contains`: the console's search)."""
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
        page = (stored + unstored).order_by(peewee.SQL('"count"').desc(), peewee.SQL('"name"').asc())
    else:  # the usual case, and the query this list had before the catalogue: no union to sort
        page = stored.order_by(count.desc(), Item.name.asc())
    page = page.offset(offset).limit(limit)
    return [{"item": name, "count": n} for name, n in page.tuples()], total
