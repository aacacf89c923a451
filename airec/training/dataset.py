"""Read interactions from the database in keyset batches into a sparse unit x item matrix.

A unit is a user's whole history, or a record without a user (a basket of its own). Rows and columns
are in the canonical order of airec.recsys.data.canonical_matrix (users by name, then baskets by record
id; items by name), the order the benchmark uses too. So the same data always give the same matrix and
hence the same fixed-seed split, here, at evaluation time, and in `airec bench accuracy --file`.
Models trained before that order existed were split with rows by user id / record and columns by item
id (`canonical=False` rebuilds that).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from itertools import chain

import numpy as np
import scipy.sparse as sp
from peewee import fn

from airec.recsys.data import build_matrix, canonical_matrix, preprocess
from airec.tables import Interaction, Item, User

BATCH = 50_000


@dataclass
class Dataset:
    X: sp.csr_matrix
    items: list[str]
    item_ids: np.ndarray
    last_interaction_id: int
    n_interactions: int
    n_users: int
    n_baskets: int
    units: list = field(default_factory=list)  # user name, or record id of a basket, per row


def last_interaction_id() -> int:
    last = Interaction.select(Interaction.id).order_by(Interaction.id.desc()).limit(1).scalar()
    return int(last or 0)


def load_dataset(
    *,
    upto_id: int | None = None,
    batch_size: int = BATCH,
    on_batch: Callable[[int], None] | None = None,
    canonical: bool = True,
) -> Dataset:
    """Stream (unit, item) pairs with id <= upto_id, BATCH rows per query, into numpy arrays."""
    upto = last_interaction_id() if upto_id is None else upto_id
    units_parts, items_parts = [], []
    after = 0
    # The unit key is computed by the database (a user's id, or minus its record's id) and each batch's
    # rows go from the cursor straight into one int64 array: no model rows, no per-row Python.
    unit_key = fn.COALESCE(Interaction.user, Interaction.record * -1)
    while True:
        query = (
            Interaction.select(Interaction.id, unit_key, Interaction.item)
            .where((Interaction.id > after) & (Interaction.id <= upto))
            .order_by(Interaction.id)
            .limit(batch_size)
        )
        rows = Interaction._meta.database.execute(query).fetchall()
        if not rows:
            break
        chunk = np.fromiter(chain.from_iterable(rows), dtype=np.int64, count=3 * len(rows)).reshape(-1, 3)
        units_parts.append(chunk[:, 1])
        items_parts.append(chunk[:, 2])
        after = int(chunk[-1, 0])
        if on_batch:
            on_batch(len(rows))
    unit_keys = np.concatenate(units_parts) if units_parts else np.empty(0, dtype=np.int64)
    item_keys = np.concatenate(items_parts) if items_parts else np.empty(0, dtype=np.int64)
    unit_vocab, unit_codes = np.unique(unit_keys, return_inverse=True)
    item_vocab, item_codes = np.unique(item_keys, return_inverse=True)
    items = item_names(item_vocab)
    user_names = dict(
        zip(unit_vocab[unit_vocab > 0].tolist(), names_of(User, unit_vocab[unit_vocab > 0]), strict=True)
    )
    units = [user_names[k] if k > 0 else -k for k in unit_vocab.tolist()]
    if canonical:
        id_of = dict(zip(items, item_vocab.tolist(), strict=True))
        X, units, items = canonical_matrix(unit_codes, item_codes, units, items)
        item_vocab = np.array([id_of[name] for name in items], dtype=np.int64)
    else:
        X = build_matrix(unit_codes, item_codes, n_units=len(unit_vocab), n_items=len(item_vocab))
    return Dataset(
        X=X,
        items=items,
        item_ids=item_vocab,
        last_interaction_id=upto,
        n_interactions=int(unit_keys.size),
        n_users=int((unit_vocab > 0).sum()),
        n_baskets=int((unit_vocab < 0).sum()),
        units=units,
    )


def preprocessed(data: Dataset, *, min_support: int = 1, max_items: int | None = None) -> Dataset:
    """The dataset with only the items airec.recsys.data.preprocess keeps (as the benchmark does)."""
    X, keep = preprocess(data.X, min_support=min_support, max_items=max_items)
    if X.shape[1] == data.X.shape[1]:
        return data
    return replace(data, X=X, items=[data.items[j] for j in keep], item_ids=data.item_ids[keep])


def item_names(ids: np.ndarray, chunk: int = 500) -> list[str]:
    """Names for item ids, in the same order (chunked IN queries keep under SQL variable limits)."""
    return names_of(Item, ids, chunk)


def names_of(model: type[Item] | type[User], ids: np.ndarray, chunk: int = 500) -> list[str]:
    """Names for user or item ids, in the same order."""
    names: dict[int, str] = {}
    id_list = [int(i) for i in ids]
    for start in range(0, len(id_list), chunk):
        part = id_list[start : start + chunk]
        names.update(model.select(model.id, model.name).where(model.id.in_(part)).tuples())
    return [names[i] for i in id_list]
