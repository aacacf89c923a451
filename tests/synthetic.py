"""Synthetic interaction data with planted co-occurrence groups, plus small API helpers for tests.

Items come in groups ("g3-i0" .. "g3-i5"); every unit draws 3-5 items from one group and, now and
then, one noise item from another group. A model that learned anything proposes a basket's group
partners first; popularity cannot, since the groups are equally popular.
"""

from __future__ import annotations

import threading
import time

import numpy as np

TRAINING = "/api/v1/training"
INTERACTIONS = "/api/v1/interactions"
RECOMMEND = "/api/v1/recommendations"


def item_name(group: int, index: int, prefix: str = "") -> str:
    return f"{prefix}g{group}-i{index}"


def planted(
    *,
    groups: int = 8,
    group_size: int = 6,
    units: int = 320,
    noise: float = 0.15,
    seed: int = 0,
    users: bool = True,
    prefix: str = "",
) -> tuple[list[dict], dict[str, int]]:
    """Records in the API shape and the item -> group map."""
    rng = np.random.default_rng(seed)
    group_of = {item_name(g, i, prefix): g for g in range(groups) for i in range(group_size)}
    records = []
    for unit in range(units):
        group = unit % groups
        size = int(rng.integers(3, 6))
        items = [item_name(group, int(i), prefix) for i in rng.choice(group_size, size=size, replace=False)]
        if rng.random() < noise:
            other = int((group + rng.integers(1, groups)) % groups)
            items.append(item_name(other, int(rng.integers(group_size)), prefix))
        record = {"items": items}
        if users:
            record["user"] = f"{prefix}u{unit}"
        records.append(record)
    return records, group_of


def partners(item: str, group_of: dict[str, int]) -> set[str]:
    """The other items planted in the same group."""
    return {name for name, g in group_of.items() if g == group_of[item] and name != item}


def ingest(client, records: list[dict], chunk: int = 5000) -> None:
    for start in range(0, len(records), chunk):
        response = client.post(INTERACTIONS, json={"records": records[start : start + chunk]})
        assert response.status_code == 201, response.get_json()


def wait_for_run(client, run_id: int, timeout: float = 60.0) -> dict:
    """Poll a run until it finished; returns the run body (with history)."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"{TRAINING}/runs/{run_id}")
        assert response.status_code == 200, response.get_json()
        run = response.get_json()["run"]
        if run["status"] in ("succeeded", "failed"):
            join_training_threads(deadline)
            return run
        assert time.monotonic() < deadline, f"run {run_id} still {run['status']} after {timeout}s"
        time.sleep(0.05)


def join_training_threads(deadline: float) -> None:
    """The run row is final a moment before its thread releases the lease and closes its connection;
    wait for that too, so a following test (or app restart) never races it."""
    for thread in threading.enumerate():
        if thread.name.startswith("airec-train-"):
            thread.join(max(0.0, deadline - time.monotonic()))


def train(client, body: dict | None = None, expect: str = "succeeded") -> dict:
    """POST a run, wait for it, check how it ended."""
    response = client.post(TRAINING, json=body or {"algorithm": "itemknn"})
    assert response.status_code == 202, response.get_json()
    run = wait_for_run(client, response.get_json()["run"]["id"])
    assert run["status"] == expect, run
    return run


def without_id(answer: dict) -> dict:
    """An answer without its recommendation_id, which every answer has its own of: what to compare when
    asking whether two answers are the same."""
    return {key: value for key, value in answer.items() if key != "recommendation_id"}


def recommend(client, items: list[str], **extra) -> dict:
    response = client.post(RECOMMEND, json={"items": items, **extra})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def timed_planted_ratings(
    path, *, users: int = 320, groups: int = 8, group_size: int = 20, per_user: int = 16, seed: int = 0
) -> None:
    """A ratings.csv (userId,movieId,rating,timestamp) for time splits: each user rates `per_user` items
    of their group and two of other groups, at times spread over the whole range, so a cut by time
    leaves every user items on both sides; the groups are equally popular."""
    rng = np.random.default_rng(seed)
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(users):
        group = user % groups
        items = [group * group_size + int(i) for i in rng.choice(group_size, per_user, replace=False)]
        items += [
            int(i) for i in rng.choice(groups * group_size, 2, replace=False) if i // group_size != group
        ]
        for item in items:
            lines.append(f"{user + 1},{item + 1},5.0,{int(rng.integers(1_000_000, 2_000_000))}")
    path.write_text("\n".join(lines) + "\n")
