"""The ingest benchmarks' workload: batches of records, every record a user no other record has, so
that what is stored can be checked against what was acknowledged. Shared by airec.benchmarks.ingest
(over HTTP) and airec.benchmarks.ingest_floor (in-process)."""

from __future__ import annotations


def make_batches(index: int, batches: int, per_batch: int, items: int, tag: str = "") -> list[list[dict]]:
    """A client's batches: every record a new user with 3 items of `items` names."""
    out = []
    for batch in range(batches):
        records = []
        for r in range(per_batch):
            user = f"bench-{tag}c{index}-b{batch}-r{r}"
            chosen = [f"item-{(index * 7 + batch * 3 + r * 5 + j * 11) % items}" for j in range(3)]
            records.append({"user": user, "items": list(dict.fromkeys(chosen))})
        out.append(records)
    return out
