"""Read interactions from the database in keyset batches into a sparse unit x item matrix.

A unit is a user's whole history, or a record without a user (a basket of its own). Rows are ordered
by unit key and columns by item id, so the same data always gives the same matrix and hence the same
fixed-seed split: that is what lets evaluation rebuild the exact held-out units later.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from airec.models import Interaction, Item
from airec.recsys.data import build_matrix

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


def last_interaction_id() -> int:
    last = Interaction.select(Interaction.id).order_by(Interaction.id.desc()).limit(1).scalar()
    return int(last or 0)


def load_dataset(
    *, upto_id: int | None = None, batch_size: int = BATCH, on_batch: Callable[[int], None] | None = None
) -> Dataset:
    """Stream (unit, item) pairs with id <= upto_id, BATCH rows per query, into numpy arrays."""
    upto = last_interaction_id() if upto_id is None else upto_id
    units_parts, items_parts = [], []
    after = 0
    while True:
        rows = list(
            Interaction.select(Interaction.id, Interaction.user, Interaction.record, Interaction.item)
            .where((Interaction.id > after) & (Interaction.id <= upto))
            .order_by(Interaction.id)
            .limit(batch_size)
            .tuples()
        )
        if not rows:
            break
        chunk = np.array([(r[0], r[1] if r[1] is not None else -r[2], r[3]) for r in rows], dtype=np.int64)
        units_parts.append(chunk[:, 1])
        items_parts.append(chunk[:, 2])
        after = int(chunk[-1, 0])
        if on_batch:
            on_batch(len(rows))
    unit_keys = np.concatenate(units_parts) if units_parts else np.empty(0, dtype=np.int64)
    item_keys = np.concatenate(items_parts) if items_parts else np.empty(0, dtype=np.int64)
    unit_vocab, unit_codes = np.unique(unit_keys, return_inverse=True)
    item_vocab, item_codes = np.unique(item_keys, return_inverse=True)
    X = build_matrix(unit_codes, item_codes, n_units=len(unit_vocab), n_items=len(item_vocab))
    return Dataset(
        X=X,
        items=item_names(item_vocab),
        item_ids=item_vocab,
        last_interaction_id=upto,
        n_interactions=int(unit_keys.size),
        n_users=int((unit_vocab > 0).sum()),
        n_baskets=int((unit_vocab < 0).sum()),
    )


def item_names(ids: np.ndarray, chunk: int = 500) -> list[str]:
    """Names for item ids, in the same order (chunked IN queries keep under SQL variable limits)."""
    names: dict[int, str] = {}
    id_list = [int(i) for i in ids]
    for start in range(0, len(id_list), chunk):
        part = id_list[start : start + chunk]
        names.update(Item.select(Item.id, Item.name).where(Item.id.in_(part)).tuples())
    return [names[i] for i in id_list]
