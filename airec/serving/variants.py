"""The running experiment as each worker serves it: every variant's model held in memory, and a user's
variant from a stable hash of the experiment's name and the user, so a user sees one variant on every
worker and host for the whole experiment (requests without a user are assigned at random)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass

from airec.serving.active import ActiveModel

RUNNING = "running"


@dataclass(frozen=True)
class RunningExperiment:
    name: str
    variants: tuple[tuple[str, str, float], ...]  # (name, model_version, weight), weights > 0 sum
    models: dict[str, ActiveModel]  # model_version -> the loaded model

    def assign(self, user: str | None) -> tuple[str, ActiveModel]:
        """(variant name, its model) for `user`: the same on every worker for the whole experiment."""
        return self.variant_at(bucket(self.name, user))

    def variant_at(self, point: float) -> tuple[str, ActiveModel]:
        total = sum(weight for _, _, weight in self.variants)
        edge = 0.0
        for name, version, weight in self.variants:
            edge += weight / total
            if point < edge:
                return name, self.models[version]
        name, version, _ = self.variants[-1]
        return name, self.models[version]


def bucket(experiment: str, user: str | None) -> float:
    """A point in [0, 1): sha256 of the experiment's name and the user; random without a user."""
    if user is None:
        return random.random()
    digest = hashlib.sha256(f"{experiment}\x00{user}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def load_running(
    load: Callable[[str], ActiveModel], active: ActiveModel | None, current: RunningExperiment | None
) -> RunningExperiment | None:
    """The running experiment with its variants' models loaded by `load` (reusing what `current` or the
    active model already holds); None when none runs. Raises what `load` raises."""
    from airec.tables import Experiment

    row = Experiment.get_or_none(Experiment.status == RUNNING)
    if row is None:
        return None
    variants = tuple((v["name"], v["model_version"], float(v["weight"])) for v in row.variants)
    if current is not None and current.name == row.name and current.variants == variants:
        return current
    held = dict(current.models) if current is not None else {}
    if active is not None:
        held.setdefault(active.version, active)
    models = {version: held.get(version) or load(version) for _, version, _ in variants}
    return RunningExperiment(row.name, variants, models)
