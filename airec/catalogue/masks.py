"""The catalogue as numpy masks over the served model's item index, kept next to the model.

Each process holds one `CatalogueMasks` per app, built for the model it serves and the catalogue version
it read last. Requests read the version row at most every POLL_SECONDS and, when it moved, apply the
names the change log says changed since (see CatalogueWatch), so a PATCH hiding an item reaches every
worker and host within a second without a restart, whatever the catalogue's size. Availability windows
are compared with the clock at each request (cached until the next window boundary), so nobody has to
call the API when a window opens or closes.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
import peewee

from airec import scope
from airec.catalogue.postings import EMPTY, KeysOf, Postings, moved
from airec.catalogue.service import catalogue_version, changes_after, parse_version
from airec.db import database
from airec.tables import ItemMeta

log = logging.getLogger(__name__)

#: How often each process reads the catalogue's version row (at most; only when requests come).
POLL_SECONDS = 0.5
#: Distinct filters whose masks each CatalogueMasks keeps (one byte per item each).
RULES_KEPT = 256
#: Masks that took longer than this to build are rebuilt off the request path.
SYNC_BUILD_SECONDS = 0.2
#: A request catches its masks up on at most this many changed names; more are rebuilt from the table.
DELTA_MOST_NAMES = 20_000


@dataclass(frozen=True)
class Rules:
    """A request's filters: any of `categories` (a category matches its `/` sub-paths), all of
    `labels`, none of `exclude_labels`."""

    categories: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    exclude_labels: tuple[str, ...] = ()

    @classmethod
    def of(
        cls, categories: Iterable[str] = (), labels: Iterable[str] = (), exclude_labels: Iterable[str] = ()
    ) -> Rules:
        if not (categories or labels or exclude_labels):
            return NO_RULES  # most requests: no dataclass to build
        return cls(tuple(categories or ()), tuple(labels or ()), tuple(exclude_labels or ()))

    @property
    def empty(self) -> bool:
        return not (self.categories or self.labels or self.exclude_labels)

    def admits(self, categories: list[str], labels: list[str]) -> bool:
        """The same rules for one item's lists (the path without a model)."""
        if self.categories and not any(
            c == wanted or c.startswith(wanted + "/") for c in categories for wanted in self.categories
        ):
            return False
        return all(label in labels for label in self.labels) and not any(
            label in labels for label in self.exclude_labels
        )


#: The rules of a request that names no filter.
NO_RULES = Rules()


def category_keys(category: str) -> list[str]:
    """'a/b/c' -> ['a', 'a/b', 'a/b/c']: the filters under which an item of that category is found."""
    parts = category.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _seconds(value: dt.datetime | str) -> float:
    """Epoch seconds of a stored naive-UTC moment (SQLite may hand back text in .tuples())."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC).timestamp()


#: Rows per keyset page when reading the catalogue: bounded memory on every driver.
_PAGE_ROWS = 50_000


_COLUMNS = (
    ItemMeta.name,
    ItemMeta.categories,
    ItemMeta.labels,
    ItemMeta.hidden,
    ItemMeta.available_from,
    ItemMeta.available_until,
)


def _rows_of(names: list[str]) -> Iterator[tuple]:
    """The same columns for the described items among `names` (500 names per query)."""
    for start in range(0, len(names), 500):
        query = ItemMeta.select(*_COLUMNS).where(ItemMeta.name.in_(names[start : start + 500]))
        sql, params = query.sql()
        yield from database.execute_sql(sql, params).fetchall()


def _category_keys_of(categories_json: str, split: dict[str, list[str]]) -> tuple[str, ...]:
    """The filter keys an item's categories (JSON text) answer to, each once ('a/b' -> 'a', 'a/b');
    `split` keeps each category's keys, since categories repeat across a catalogue."""
    keys: dict[str, None] = {}
    for category in orjson.loads(categories_json):
        found = split.get(category)
        keys.update(
            dict.fromkeys(found if found is not None else split.setdefault(category, category_keys(category)))
        )
    return tuple(keys)


def _described_rows() -> Iterator[tuple]:
    """(name, categories JSON text, labels JSON text, hidden, from, until) of every described item, in
    keyset pages by name (no driver holds a million rows at once)."""
    after = ""
    while True:
        query = (
            ItemMeta.select(*_COLUMNS).where(ItemMeta.name > after).order_by(ItemMeta.name).limit(_PAGE_ROWS)
        )
        sql, params = query.sql()
        rows = database.execute_sql(sql, params).fetchall()
        yield from rows
        if len(rows) < _PAGE_ROWS:
            return
        after = rows[-1][0]


@dataclass
class CatalogueMasks:
    """The catalogue over one model's item index (a process holds one per app)."""

    model_version: str | None
    version: str | None
    n_items: int
    hidden: np.ndarray | None = None  # bool per item, None when nothing is hidden
    starts: np.ndarray | None = None  # epoch seconds per item (-inf: no start), None without windows
    ends: np.ndarray | None = None  # epoch seconds (+inf: no end)
    by_category: dict[str, np.ndarray] = field(default_factory=dict)
    by_label: dict[str, np.ndarray] = field(default_factory=dict)
    category_keys_of: KeysOf = field(default_factory=KeysOf.empty)
    label_keys_of: KeysOf = field(default_factory=KeysOf.empty)
    build_seconds: float = 0.0  # of the full build these masks descend from
    _unavailable: tuple = (float("-inf"), float("-inf"), None)  # (valid from, valid until, mask)
    _by_rules: dict = field(default_factory=dict)  # Rules -> its read-only mask (see rules_mask)

    @classmethod
    def build(cls, index: dict[str, int], model_version: str | None, version: str | None) -> CatalogueMasks:
        """Read every described item once (streamed), keeping only those the model knows."""
        started = time.perf_counter()
        masks = cls._build(index, model_version, version)
        masks.build_seconds = time.perf_counter() - started
        return masks

    @classmethod
    def _build(cls, index: dict[str, int], model_version: str | None, version: str | None) -> CatalogueMasks:
        n = len(index)
        masks = cls(model_version, version, n)
        if version is None:
            return masks  # nothing was ever described
        hidden = np.zeros(n, dtype=bool)
        starts = np.full(n, -np.inf)
        ends = np.full(n, np.inf)
        categories, labels = Postings(), Postings()
        keys_of: dict[str, list[str]] = {}  # categories repeat: split each once
        for name, cats, labs, is_hidden, start, end in _described_rows():
            i = index.get(name)
            if i is None:
                continue
            if is_hidden:
                hidden[i] = True
            if start is not None:
                starts[i] = _seconds(start)
            if end is not None:
                ends[i] = _seconds(end)
            if cats != "[]":
                categories.add(_category_keys_of(cats, keys_of), i)
            if labs != "[]":
                labels.add(orjson.loads(labs), i)
        masks.hidden = hidden if hidden.any() else None
        if np.isfinite(starts).any() or np.isfinite(ends).any():
            masks.starts, masks.ends = starts, ends
        masks.by_category, masks.category_keys_of = categories.arrays(n)
        masks.by_label, masks.label_keys_of = labels.arrays(n)
        return masks

    @property
    def patched_items(self) -> int:
        """Items whose keys changes rewrote since the full build (each change copies that much)."""
        return len(self.category_keys_of.changed) + len(self.label_keys_of.changed)

    @property
    def sequence(self) -> tuple[str | None, int | None]:
        """(epoch, sequence) of the catalogue version these masks show."""
        return parse_version(self.version)

    def changed(self, index: dict[str, int], names: list[str], version: str | None) -> CatalogueMasks:
        """New masks with the current rows of `names` (read from the table; a name without a row is an
        entry deleted) in place of what these masks hold for them: the arrays that change are copied,
        the others shared, so requests reading these masks meanwhile are not disturbed."""
        rows = {row[0]: row for row in _rows_of([name for name in names if name in index])}
        n = self.n_items
        hidden = self.hidden.copy() if self.hidden is not None else np.zeros(n, dtype=bool)
        windowed = self.starts is not None or any(
            row[4] is not None or row[5] is not None for row in rows.values()
        )
        starts = ends = None
        if windowed:
            starts = self.starts.copy() if self.starts is not None else np.full(n, -np.inf)
            ends = self.ends.copy() if self.ends is not None else np.full(n, np.inf)
        new_categories: dict[int, tuple[str, ...]] = {}
        new_labels: dict[int, tuple[str, ...]] = {}
        for name in names:
            i = index.get(name)
            if i is None:
                continue
            _, cats, labs, is_hidden, start, end = rows.get(name, (name, "[]", "[]", False, None, None))
            hidden[i] = bool(is_hidden)
            if starts is not None:
                starts[i] = -np.inf if start is None else _seconds(start)
                ends[i] = np.inf if end is None else _seconds(end)
            new_categories[i] = _category_keys_of(cats, {})
            new_labels[i] = tuple(dict.fromkeys(orjson.loads(labs)))
        masks = CatalogueMasks(self.model_version, version, n, build_seconds=self.build_seconds)
        masks.hidden = hidden if hidden.any() else None
        if starts is not None and (np.isfinite(starts).any() or np.isfinite(ends).any()):
            masks.starts, masks.ends = starts, ends
        masks.by_category, masks.category_keys_of = moved(
            self.by_category, self.category_keys_of, new_categories
        )
        masks.by_label, masks.label_keys_of = moved(self.by_label, self.label_keys_of, new_labels)
        return masks

    def unavailable(self, now: float) -> np.ndarray | None:
        """Hidden or outside its window at `now` (epoch seconds); None when every item is available.
        Computed again only when `now` passes the next window boundary."""
        valid_from, valid_until, mask = self._unavailable
        if valid_from <= now < valid_until:
            return mask
        if self.starts is None:
            mask, valid_until = self.hidden, float("inf")
        else:
            mask = (now < self.starts) | (now >= self.ends)
            if self.hidden is not None:
                mask |= self.hidden
            later = np.concatenate([self.starts[self.starts > now], self.ends[self.ends > now]])
            valid_until = float(later.min()) if len(later) else float("inf")
            mask = mask if mask.any() else None
        self._unavailable = (now, valid_until, mask)
        return mask

    def blocked(self, rules: Rules, now: float | None = None) -> np.ndarray | None:
        """Items no answer may hold under `rules` at `now`: a read-only bool mask, or None when none
        are."""
        base = self.unavailable(time.time() if now is None else now)
        if rules.empty:
            return base
        ruled = self.rules_mask(rules)
        return ruled if base is None else base | ruled

    def rules_mask(self, rules: Rules) -> np.ndarray:
        """Items the categories and labels of `rules` remove, kept per Rules for these masks (a shop
        sends the same few filters again and again: building one over a 6,000-item catalogue cost more
        than the rest of the filtering). Masks are never edited in place (a change makes new masks),
        so a kept mask stays right; at most RULES_KEPT are kept."""
        found = self._by_rules.get(rules)
        if found is not None:
            return found
        mask = np.zeros(self.n_items, dtype=bool)
        if rules.categories:
            allowed = np.zeros(self.n_items, dtype=bool)
            for category in rules.categories:
                allowed[self.by_category.get(category, EMPTY)] = True
            mask |= ~allowed
        for label in rules.labels:
            has = np.zeros(self.n_items, dtype=bool)
            has[self.by_label.get(label, EMPTY)] = True
            mask |= ~has
        for label in rules.exclude_labels:
            mask[self.by_label.get(label, EMPTY)] = True
        mask.flags.writeable = False
        if len(self._by_rules) >= RULES_KEPT:
            self._by_rules.clear()
        self._by_rules[rules] = mask
        return mask


class CatalogueWatch:
    """One app's masks in this process, kept at the catalogue's version for the served model.

    The version row is read by a request at most once per POLL_SECONDS (no thread: an idle worker reads
    nothing). When it moved, the names changed since the masks' sequence are read from the change log
    and only their rows applied (CatalogueMasks.changed), before that request is answered. The masks are
    built again from the whole table only for a new model (before it answers), or when the log cannot
    say what changed (pruned past the masks, a restore, more than DELTA_MOST_NAMES names): then by a
    one-off thread if the last build took more than SYNC_BUILD_SECONDS, requests keeping the previous
    masks, which the thread catches up on the changes made while it read before handing them over.
    """

    def __init__(self) -> None:
        self.masks: CatalogueMasks | None = None
        self.version: str | None = None
        self.checked_at = float("-inf")
        self._lock = threading.Lock()
        self._building = False

    def masks_for(self, model) -> CatalogueMasks:
        """The masks over `model`'s index: the ranking path's hook."""
        masks = self.masks
        if (
            masks is not None
            and masks.model_version == model.version
            and time.monotonic() - self.checked_at < POLL_SECONDS
        ):
            return masks
        with self._lock:
            if time.monotonic() - self.checked_at >= POLL_SECONDS:
                self._read_version()
            masks = self.masks
            if masks is not None and masks.model_version == model.version:
                if masks.version == self.version:
                    return masks
                caught_up = self._caught_up(masks, model.index, self.version)
                if caught_up is not None:
                    self.masks = caught_up
                    if caught_up.patched_items > DELTA_MOST_NAMES and not self._building:
                        self._rebuild_in_background(model)  # bounds what each catch-up copies
                    return caught_up
                if self._building:
                    return masks
                if masks.build_seconds > SYNC_BUILD_SECONDS:
                    self._rebuild_in_background(model)
                    return masks
            self.masks = CatalogueMasks.build(model.index, model.version, self.version)
            return self.masks

    def _read_version(self) -> None:
        try:
            self.version = catalogue_version()
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            log.warning("catalogue version poll: database unavailable (%s); keeping the masks", exc)
        self.checked_at = time.monotonic()

    @staticmethod
    def _caught_up(
        masks: CatalogueMasks, index: dict[str, int], version: str | None
    ) -> CatalogueMasks | None:
        """`masks` brought to `version` from the change log, or None when the log cannot say."""
        epoch, seq = masks.sequence
        new_epoch, new_seq = parse_version(version)
        if seq is None or new_seq is None or epoch != new_epoch or new_seq < seq:
            return None
        try:
            names = changes_after(seq, new_seq, DELTA_MOST_NAMES)
            if names is None:
                return None
            return masks.changed(index, names, version)
        except (peewee.OperationalError, peewee.InterfaceError) as exc:
            log.warning("catalogue changes: database unavailable (%s); keeping the masks", exc)
            return masks

    def _rebuild_in_background(self, model) -> None:
        self._building = True
        version = self.version

        def rebuild() -> None:
            try:
                with database.connection_context():
                    fresh = CatalogueMasks.build(model.index, model.version, version)
                    # the changes made while it read, then (locked) any a request applied meanwhile
                    fresh = self._caught_up(fresh, model.index, catalogue_version()) or fresh
                    with self._lock:
                        current = self.masks
                        if current is None or current.model_version == fresh.model_version:
                            self.masks = self._caught_up(fresh, model.index, self.version) or fresh
                log.info("catalogue masks rebuilt in %.2fs", fresh.build_seconds)
            except Exception:
                log.exception("catalogue masks rebuild failed; keeping the previous ones")
            finally:
                self._building = False

        scope.thread(rebuild, name="airec-catalogue-masks").start()


#: Per database (each app has its own).
_watches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_watches_lock = threading.Lock()


def watch() -> CatalogueWatch:
    """This app's watch."""
    db = database.obj
    found = _watches.get(db)
    if found is None:
        with _watches_lock:
            found = _watches.setdefault(db, CatalogueWatch())
    return found


def blocked_for(model, rules: Rules) -> np.ndarray | None:
    """The ranking path's hook: the items `model` may not answer under `rules`, now."""
    return watch().masks_for(model).blocked(rules)
