"""Typed feedback in training (AIREC_EVENT_WEIGHTS, AIREC_NEGATIVE_TYPES), applied to a loaded Dataset.

A (unit, item) cell takes the largest weight among its events (a type without a weight weighs 1); a
cell whose latest event (by the record's timestamp, or when it was stored, then insertion order) is of a
negative type is removed. With neither setting the dataset is returned as loaded: clients that send no
type, and deployments that set nothing, train exactly as before.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.sparse as sp
from peewee import fn

from airec.feedback.kinds import DEFAULT_TYPE
from airec.tables import Interaction, Record, User
from airec.training.dataset import BATCH, Dataset, names_of


def feedback_report(weights: dict[str, float], negative: frozenset[str] | set[str]) -> dict:
    """What a model was trained with, for its manifest and the evaluation report."""
    return {"event_weights": dict(sorted(weights.items())), "negative_types": sorted(negative)}


def apply_feedback(
    data: Dataset, *, weights: dict[str, float], negative: frozenset[str] | set[str], batch_size: int = BATCH
) -> Dataset:
    """The dataset with weighted cells and negated cells removed (see the module's docstring)."""
    if not weights and not negative:
        return data
    cells: dict[tuple[int, int], list] = {}  # (unit key, item id) -> [weight, latest (moment, id), negative]
    moment = fn.COALESCE(Record.timestamp, Record.created_at)
    after = 0
    while True:
        rows = list(
            Interaction.select(
                Interaction.id, Interaction.user, Interaction.record, Interaction.item, Record.type, moment
            )
            .join(Record, on=Interaction.record == Record.id)
            .where((Interaction.id > after) & (Interaction.id <= data.last_interaction_id))
            .order_by(Interaction.id)
            .limit(batch_size)
            .tuples()
        )
        if not rows:
            break
        for row_id, user, record, item, kind, when in rows:
            kind = kind or DEFAULT_TYPE
            key = (user if user is not None else -record, item)
            order = (str(when), row_id)
            cell = cells.get(key)
            if cell is None:
                cells[key] = [
                    weights.get(kind, 1.0) if kind not in negative else 0.0,
                    order,
                    kind in negative,
                ]
                continue
            if kind not in negative:
                cell[0] = max(cell[0], weights.get(kind, 1.0))
            if order > cell[1]:
                cell[1], cell[2] = order, kind in negative
        after = rows[-1][0]
    return replace(data, X=_matrix(data, cells))


def _matrix(data: Dataset, cells: dict[tuple[int, int], list]) -> sp.csr_matrix:
    user_ids = sorted({unit for unit, _ in cells if unit > 0})
    name_of = dict(zip(user_ids, names_of(User, np.array(user_ids, dtype=np.int64)), strict=True))
    row_of = {unit: r for r, unit in enumerate(data.units)}
    col_of = {int(item): c for c, item in enumerate(data.item_ids)}
    rows, cols, values = [], [], []
    for (unit, item), (weight, _, negated) in cells.items():
        column = col_of.get(item)
        if negated or column is None or weight <= 0:  # removed, or an item preprocessing dropped
            continue
        rows.append(row_of[name_of[unit] if unit > 0 else -unit])
        cols.append(column)
        values.append(weight)
    X = sp.csr_matrix(
        (
            np.array(values, dtype=np.float32),
            (np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)),
        ),
        shape=data.X.shape,
        dtype=np.float32,
    )
    X.sum_duplicates()
    X.sort_indices()
    return X
