"""A catalogue's categories and labels as postings: key -> the item indices that have it, in int32
arrays (1M items cost megabytes, not Python ints), with the reverse (item -> its keys) that a change
needs to take an item out of the keys it had (airec/catalogue/masks.py)."""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

EMPTY = np.empty(0, dtype=np.int32)


class Postings:
    """Key -> item indices, gathered in flat int32 arrays (1M items cost megabytes, not Python ints)."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.key_ids = array("i")
        self.items = array("i")

    def add(self, keys: Iterable[str], item: int) -> None:
        for key in keys:
            self.key_ids.append(self.keys.setdefault(key, len(self.keys)))
            self.items.append(item)

    def arrays(self, n_items: int) -> tuple[dict[str, np.ndarray], KeysOf]:
        """The postings, and each item's keys (what a change must take the item out of)."""
        key_ids = np.frombuffer(self.key_ids, dtype=np.int32)
        items = np.frombuffer(self.items, dtype=np.int32)
        order = np.argsort(key_ids, kind="stable")
        bounds = np.searchsorted(key_ids[order], np.arange(len(self.keys) + 1))
        sorted_items = items[order]
        postings = {key: sorted_items[bounds[i] : bounds[i + 1]] for key, i in self.keys.items()}
        by_item = np.argsort(items, kind="stable")
        starts = np.searchsorted(items[by_item], np.arange(n_items + 1)).astype(np.int64)
        return postings, KeysOf(list(self.keys), starts, key_ids[by_item].copy())


@dataclass(frozen=True)
class KeysOf:
    """Item index -> its posting keys: the built ones in flat arrays (item i's key ids are
    key_ids[starts[i]:starts[i + 1]]), the ones changes wrote since in `changed` (which wins)."""

    names: list[str]
    starts: np.ndarray
    key_ids: np.ndarray
    changed: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def empty(cls) -> KeysOf:
        return cls([], np.zeros(1, dtype=np.int64), EMPTY)

    def of(self, item: int) -> tuple[str, ...]:
        found = self.changed.get(item)
        if found is not None:
            return found
        if item + 1 >= len(self.starts):
            return ()
        return tuple(self.names[k] for k in self.key_ids[self.starts[item] : self.starts[item + 1]])


def moved(
    postings: dict[str, np.ndarray], keys_of: KeysOf, new_keys: dict[int, tuple[str, ...]]
) -> tuple[dict[str, np.ndarray], KeysOf]:
    """Postings and keys after the items of `new_keys` took those keys: only the keys that lost or
    gained an item get a new array; the rest are shared with the masks before."""
    gone: dict[str, list[int]] = {}
    came: dict[str, list[int]] = {}
    for item, keys in new_keys.items():
        old = keys_of.of(item)
        for key in set(old).difference(keys):
            gone.setdefault(key, []).append(item)
        for key in set(keys).difference(old):
            came.setdefault(key, []).append(item)
    if not gone and not came:
        return postings, keys_of
    out = dict(postings)
    for key in gone.keys() | came.keys():
        items = out.get(key, EMPTY)
        if key in gone:
            items = items[~np.isin(items, np.array(gone[key], dtype=np.int32))]
        if key in came:
            items = np.concatenate([items, np.array(came[key], dtype=np.int32)])
        if len(items):
            out[key] = items
        else:
            out.pop(key, None)
    return out, KeysOf(keys_of.names, keys_of.starts, keys_of.key_ids, {**keys_of.changed, **new_keys})
