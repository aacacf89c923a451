"""Experiments: one runs at a time; its variants name model versions that every worker holds in memory
(airec.serving.variants) while it runs. Results come from the pre-aggregated impression counts."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

import peewee

from airec.db import atomic_write
from airec.experiments.verdict import difference, verdict
from airec.feedback.stats import online_stats
from airec.tables import Experiment, ModelVersion, utcnow


class Status(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class ExperimentConflict(Exception):
    """Another experiment runs, the name is taken, or the experiment is not running."""


class ExperimentNotFound(LookupError):
    pass


class UnknownVersion(ValueError):
    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


def start(name: str, variants: list[dict]) -> dict:
    """Start an experiment (checked first: each version exists and is servable; none other runs)."""
    for index, variant in enumerate(variants):
        row = ModelVersion.get_or_none(ModelVersion.version == variant["model_version"])
        if row is None or row.status in ("archived", "failed"):
            state = "does not exist" if row is None else f"is {row.status}"
            raise UnknownVersion(index, f"Model version {variant['model_version']!r} {state}.")
    stored = [
        {"name": v["name"], "model_version": v["model_version"], "weight": v["weight"]} for v in variants
    ]

    def create() -> None:
        running = Experiment.get_or_none(Experiment.status == Status.RUNNING.value)
        if running is not None:
            raise ExperimentConflict(
                f"Experiment {running.name!r} is running: stop it first (one at a time)."
            )
        if Experiment.get_or_none(Experiment.name == name) is not None:
            raise ExperimentConflict(f"An experiment named {name!r} exists already: choose another name.")
        Experiment.create(name=name, variants=stored, status=Status.RUNNING.value, started_at=utcnow())

    try:
        atomic_write(create)
    except peewee.IntegrityError as exc:  # a concurrent start with the same name
        raise ExperimentConflict(f"An experiment named {name!r} exists already.") from exc
    return results(name)


def stop(name: str) -> dict:
    row = _row(name)
    if row.status != Status.RUNNING.value:
        raise ExperimentConflict(f"Experiment {name!r} is not running.")
    atomic_write(
        lambda: (
            Experiment.update(status=Status.STOPPED.value, stopped_at=utcnow())
            .where(Experiment.name == name)
            .execute()
        )
    )
    return results(name)


def listing() -> list[dict]:
    return [results(row.name) for row in Experiment.select().order_by(Experiment.started_at.desc())]


def running_versions() -> set[str]:
    """Model versions a running experiment names: never pruned nor archived."""
    row = Experiment.get_or_none(Experiment.status == Status.RUNNING.value)
    return {v["model_version"] for v in row.variants} if row is not None else set()


def _row(name: str) -> Experiment:
    row = Experiment.get_or_none(Experiment.name == name)
    if row is None:
        raise ExperimentNotFound(f"No experiment {name!r}.")
    return row


def results(name: str) -> dict:
    """Each variant's impressions, takes and take rate with its interval, the differences and verdict."""
    row = _row(name)
    variants = []
    for variant in row.variants:
        counts = online_stats(
            keep_days=3650,
            since=row.started_at,
            until=row.stopped_at or utcnow(),
            model_version=variant["model_version"],
            variant=variant["name"],
        )
        variants.append(
            {**variant, **{k: counts[k] for k in ("impressions", "takes", "take_rate", "interval")}}
        )
    base = (variants[0]["takes"], variants[0]["impressions"])
    differences = []
    for variant in variants[1:]:
        variant["difference"] = difference(base, (variant["takes"], variant["impressions"]))
        if variant["difference"] is not None:
            differences.append({"variant": variant["name"], **variant["difference"]})
    said, winner = verdict(variants)
    for variant in variants:
        variant.pop("difference", None)
    return {
        "name": row.name,
        "status": row.status,
        "started_at": row.started_at.replace(tzinfo=dt.UTC),
        "stopped_at": row.stopped_at.replace(tzinfo=dt.UTC) if row.stopped_at else None,
        "variants": variants,
        "difference": differences,
        "verdict": said,
        "winner": winner,
    }
