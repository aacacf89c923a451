"""The ledger of deletions, and which model versions learned from data deleted after they were trained.

A version was trained on the interactions with ids up to its manifest's `last_interaction_id`, read when
its run started. A deletion recorded after that start whose lowest removed id is at most that bound
removed rows the version learned from: it `contains_deleted_data`."""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable
from typing import Any

from airec.tables import Deletion, TrainingRun, utcnow


def record(kind: str, interactions: int, min_interaction_id: int | None) -> None:
    """Note a deletion (call inside the transaction that finishes it)."""
    if interactions:
        Deletion.create(
            at=utcnow(), kind=kind, interactions=interactions, min_interaction_id=min_interaction_id
        )


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    text = str(value).rstrip("Z")
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def mark_deleted_data(versions: Iterable[dict[str, Any]]) -> None:
    """Set `contains_deleted_data` on each described version (GET /api/v1/models) in place."""
    versions = list(versions)
    rows = Deletion.select(Deletion.at, Deletion.min_interaction_id).where(
        Deletion.min_interaction_id.is_null(False)
    )
    deletions = sorted((_as_datetime(at) or dt.datetime.min, low) for at, low in rows.tuples())
    # lowest[i]: the lowest id removed by deletion i or any later one (deletions sorted by time)
    lowest = [low for _, low in deletions]
    for i in range(len(lowest) - 2, -1, -1):
        lowest[i] = min(lowest[i], lowest[i + 1])
    times = [at for at, _ in deletions]
    started = _run_starts([v.get("run_id") for v in versions]) if deletions else {}
    for version in versions:
        upto = (version.get("data") or {}).get("last_interaction_id")
        since = started.get(version.get("run_id")) or _as_datetime(version.get("created_at"))
        first = bisect.bisect_left(times, since) if since is not None else 0
        version["contains_deleted_data"] = bool(
            upto is not None and first < len(lowest) and lowest[first] <= upto
        )


def _run_starts(run_ids: list[int | None]) -> dict[int, dt.datetime | None]:
    """When each run began reading its data (its start, or its queueing if it never started)."""
    wanted = [rid for rid in run_ids if rid]
    if not wanted:
        return {}
    query = TrainingRun.select(TrainingRun.id, TrainingRun.started_at, TrainingRun.created_at).where(
        TrainingRun.id.in_(wanted)
    )
    return {rid: _as_datetime(started or created) for rid, started, created in query.tuples()}
