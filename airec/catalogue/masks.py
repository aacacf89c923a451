"""The catalogue as numpy masks over the served model's item index, kept next to the model.

Each process holds one `CatalogueMasks` per app, built for the model it serves and the catalogue version
it read last. Requests read the version row at most every POLL_SECONDS and the masks are rebuilt when it
changed (see CatalogueWatch), so a PATCH hiding an item reaches every worker and host within a second
without a restart. Availability windows are compared with the
clock at each request (cached until the next window boundary), so nobody has to call the API when a
window opens or closes.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import weakref
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import orjson
import peewee

from airec import scope
from airec.catalogue.service import catalogue_version
from airec.db import database
from airec.tables import ItemMeta

log = logging.getLogger(__name__)

#: How often each process reads the catalogue's version row (at most; only when requests come).
POLL_SECONDS = 0.5
#: Masks that took longer than this to build are rebuilt off the request path.
SYNC_BUILD_SECONDS = 0.2
_EMPTY = np.empty(0, dtype=np.int32)


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


def _described_rows() -> Iterator[tuple]:
    """(name, categories JSON text, labels JSON text, hidden, from, until) of every described item, in
    keyset pages by name (no driver holds a million rows at once)."""
    columns = (
        ItemMeta.name,
        ItemMeta.categories,
        ItemMeta.labels,
        ItemMeta.hidden,
        ItemMeta.available_from,
        ItemMeta.available_until,
    )
    after = ""
    while True:
        query = (
            ItemMeta.select(*columns).where(ItemMeta.name > after).order_by(ItemMeta.name).limit(_PAGE_ROWS)
        )
        sql, params = query.sql()
        rows = database.execute_sql(sql, params).fetchall()
        yield from rows
        if len(rows) < _PAGE_ROWS:
            return
        after = rows[-1][0]


class _Postings:
    """Key -> item indices, gathered in flat int32 arrays (1M items cost megabytes, not Python ints)."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.key_ids = array("i")
        self.items = array("i")

    def add(self, keys: Iterable[str], item: int) -> None:
        for key in keys:
            self.key_ids.append(self.keys.setdefault(key, len(self.keys)))
            self.items.append(item)

    def arrays(self) -> dict[str, np.ndarray]:
        key_ids = np.frombuffer(self.key_ids, dtype=np.int32)
        items = np.frombuffer(self.items, dtype=np.int32)
        order = np.argsort(key_ids, kind="stable")
        bounds = np.searchsorted(key_ids[order], np.arange(len(self.keys) + 1))
        sorted_items = items[order]
        return {key: sorted_items[bounds[i] : bounds[i + 1]] for key, i in self.keys.items()}


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
    build_seconds: float = 0.0
    _unavailable: tuple = (float("-inf"), float("-inf"), None)  # (valid from, valid until, mask)

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
        categories, labels = _Postings(), _Postings()
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
                keys: set[str] = set()
                for category in orjson.loads(cats):
                    found = keys_of.get(category)
                    keys.update(
                        found if found is not None else keys_of.setdefault(category, category_keys(category))
                    )
                categories.add(keys, i)
            if labs != "[]":
                labels.add(orjson.loads(labs), i)
        masks.hidden = hidden if hidden.any() else None
        if np.isfinite(starts).any() or np.isfinite(ends).any():
            masks.starts, masks.ends = starts, ends
        masks.by_category, masks.by_label = categories.arrays(), labels.arrays()
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
        """Items no answer may hold under `rules` at `now`: a bool mask, or None when none are."""
        base = self.unavailable(time.time() if now is None else now)
        if rules.empty:
            return base
        mask = base.copy() if base is not None else np.zeros(self.n_items, dtype=bool)
        if rules.categories:
            allowed = np.zeros(self.n_items, dtype=bool)
            for category in rules.categories:
                allowed[self.by_category.get(category, _EMPTY)] = True
            mask |= ~allowed
        for label in rules.labels:
            has = np.zeros(self.n_items, dtype=bool)
            has[self.by_label.get(label, _EMPTY)] = True
            mask |= ~has
        for label in rules.exclude_labels:
            mask[self.by_label.get(label, _EMPTY)] = True
        return mask


class CatalogueWatch:
    """One app's masks in this process, rebuilt when the catalogue's version or the served model changes.

    The version row is read by a request at most once per POLL_SECONDS (no thread: an idle worker reads
    nothing). A change is applied before that request is answered while rebuilding costs less than
    SYNC_BUILD_SECONDS; a larger catalogue is rebuilt by a one-off thread, and requests keep the
    previous masks for the rebuild's duration. A new model always gets its masks before it answers.
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
                if masks.version == self.version or self._building:
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

    def _rebuild_in_background(self, model) -> None:
        self._building = True
        version = self.version

        def rebuild() -> None:
            try:
                with database.connection_context():
                    fresh = CatalogueMasks.build(model.index, model.version, version)
                with self._lock:
                    current = self.masks
                    if current is None or current.model_version == fresh.model_version:
                        self.masks = fresh
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
