"""The training read (airec.training.dataset.load_dataset): users' histories and baskets, across batch
boundaries and up to a given id, into the canonical unit x item matrix."""

from __future__ import annotations

from airec.ingestion.service import ingest_records
from airec.tables import Interaction
from airec.training.dataset import load_dataset


def _cells(data) -> set[tuple]:
    rows, cols = data.X.nonzero()
    return {(data.units[r], data.items[c]) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)}


def test_users_and_baskets_read_in_small_batches(db):
    ingest_records(
        [
            {"user": "bob", "items": ["b", "c"]},
            {"items": ["c", "d"]},  # a basket: its own unit, keyed by its record
            {"user": "ann", "items": ["a", "b"]},
            {"user": "bob", "items": ["a", "c"]},  # c again: one cell
            {"items": ["a"]},
        ]
    )
    batches: list[int] = []
    data = load_dataset(batch_size=2, on_batch=batches.append)
    assert batches == [2, 2, 2, 2, 1]
    baskets = sorted(unit for unit in data.units if not isinstance(unit, str))
    assert data.units == ["ann", "bob", *baskets] and data.items == ["a", "b", "c", "d"]
    assert (data.n_users, data.n_baskets, data.n_interactions) == (2, 2, 9)
    first, second = baskets
    assert _cells(data) == {
        ("ann", "a"), ("ann", "b"), ("bob", "a"), ("bob", "b"), ("bob", "c"),
        (first, "c"), (first, "d"), (second, "a"),
    }  # fmt: skip
    assert data.X.dtype.kind == "f" and set(data.X.data.tolist()) == {1.0}
    ids = sorted(Interaction.select(Interaction.id).tuples())
    upto = load_dataset(upto_id=ids[3][0])  # bob's first record and the first basket
    assert upto.last_interaction_id == ids[3][0] and upto.n_interactions == 4
    assert _cells(upto) == {("bob", "b"), ("bob", "c"), (first, "c"), (first, "d")}
