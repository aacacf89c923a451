"""The fit itself, in the child process: split, choose on validation, evaluate on test, refit on every
unit, write the model folder.

Pure computation on a matrix, with no database and no web framework, because it runs in a child
process (airec.training.isolation): a native crash there fails the run, not the server. The run's
pipeline (airec.training.pipeline) reads the data before and publishes the folder after.
"""

from __future__ import annotations

import gc
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from airec.config import Settings
from airec.modelstore import folders
from airec.recsys.base import DataShape, ProgressCallback
from airec.recsys.evaluation import Split, selection_metric, validation_score
from airec.training import heldout
from airec.training.choices import (  # noqa: F401  (re-exported: the fit's vocabulary)
    AUTO_CANDIDATES,
    CHOICES,
    EVAL_KS,
    TrainingRefused,
    build_model,
    memory_refusal,
)


@dataclass
class FitJob:
    """Everything the child needs: the data, what to fit, and where to write the folder."""

    algorithm: str
    params: dict
    settings: Settings
    X: sp.csr_matrix
    items: list[str]
    baskets: bool  # data without any user: always evaluated leave-one-out, as the benchmark does
    manifest: dict  # what the parent knows (data counts, preprocessing, run id), completed here
    warm_from: str | None = None  # folder of the active autoencoder to start from


@dataclass
class Choice:
    """The candidate chosen on validation, and what every candidate scored."""

    name: str
    model: Any
    scores: dict[str, dict]
    warmed: set[str] = field(default_factory=set)  # candidates that started from the active model
    warm: Any = None  # the active autoencoder's files, when warm starting


def fit_and_write(job: FitJob, progress: ProgressCallback | None = None) -> dict:
    """Fit as the job asks, write the folder; returns {"version", "folder", "manifest"}."""
    model, manifest = fit_model(job, progress)
    version = folders.new_version(manifest["algorithm"])
    folders.clean_temporaries(job.settings.models_dir)
    folder = folders.write_model(
        job.settings.models_dir,
        version=version,
        model=model,
        items=job.items,
        popularity=np.asarray(job.X.sum(axis=0)).ravel(),
        manifest=manifest,
    )
    return {"version": version, "folder": str(folder), "manifest": manifest}


def fit_model(job: FitJob, progress: ProgressCallback | None = None) -> tuple[Any, dict]:
    """Choose on validation, evaluate on test, then (AIREC_TRAIN_REFIT) fit the chosen configuration
    once more on every unit: the held-out units are data too, up to 30% of it. Returns the model to
    publish and its manifest."""
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    settings = job.settings
    holdout = {"holdout_fraction": settings.train_holdout_fraction, "seed": settings.train_seed}
    split = heldout.split_units(job.X, baskets=job.baskets, **holdout)
    stages = {"split": time.perf_counter() - started}
    choice = choose(job, split, progress)
    stages["choose"] = time.perf_counter() - started - sum(stages.values())
    evaluation = heldout.evaluate_split(choice.model, split)
    stages["evaluation"] = time.perf_counter() - started - sum(stages.values())
    refit = None
    if settings.train_refit:
        refit = refit_on_every_unit(job, choice, progress)
        stages["refit"] = refit["seconds"]
        evaluation["estimates"] = (
            "the published model, which is this configuration refitted on every unit, test units included"
        )
    manifest = {
        **job.manifest,
        "algorithm": choice.name,
        "requested_algorithm": job.algorithm,
        "split": heldout.describe_split(split, **holdout),
        "params": choice.scores[choice.name]["params"],
        "validation": choice.scores[choice.name]["validation"],
        "evaluation": evaluation,
        "refit": refit,
        "candidates": choice.scores if job.algorithm == "auto" else None,
        "warm_start": choice.name in choice.warmed,  # what happened, not what was asked
        # Seconds per stage (an operator predicting a run reads these); a model's own parts, such as
        # the autoencoder's network, linear path and linear weight, are in its fit's stage_seconds.
        "stages": {
            **{name: round(seconds, 3) for name, seconds in stages.items()},
            "fit_parts": choice.scores[choice.name].get("stage_seconds"),
            "refit_parts": (refit or {}).get("stage_seconds"),
        },
    }
    manifest["data"]["train_units"] = int(split.train.shape[0])
    manifest["training_seconds"] = round(time.perf_counter() - started, 3)
    manifest["training_cpu_seconds"] = round(_cpu_seconds() - cpu_started, 3)
    return choice.model, manifest


def choose(job: FitJob, split: Split, progress: ProgressCallback | None) -> Choice:
    """Fit each candidate on the training units and keep the best on validation ('auto' tries
    several; a candidate that cannot be fitted is recorded with its reason)."""
    choice = Choice(name="", model=None, scores={}, warm=_warm_source(job))
    candidates = AUTO_CANDIDATES if job.algorithm == "auto" else (job.algorithm,)
    fitted: dict[str, Any] = {}
    for name in candidates:
        model = build_model(name, job.params if job.algorithm != "auto" else {}, job.settings)
        try:
            choice.scores[name] = _fit_candidate(name, model, job, split, choice, progress)
        except TrainingRefused as exc:
            if job.algorithm != "auto":
                raise
            choice.scores[name] = {"error": str(exc)}
            continue
        fitted[name] = model
    if not fitted:
        reasons = "; ".join(score["error"] for score in choice.scores.values())
        raise TrainingRefused(f"no algorithm could be trained: {reasons}")
    choice.name = max(fitted, key=lambda n: next(iter(choice.scores[n]["validation"].values())))
    choice.model = fitted[choice.name]
    return choice


def _fit_candidate(name: str, model, job: FitJob, split: Split, choice: Choice, progress) -> dict:
    """Fit one candidate on the training units; its validation score, time and parameters."""
    too_big = memory_refusal(model, DataShape.of(job.X), job.settings)
    if too_big:
        raise TrainingRefused(too_big)
    if choice.warm is not None and _warm_start(model, choice.warm, job.items):
        choice.warmed.add(name)
    t0 = time.perf_counter()
    try:
        report = model.fit(split.train, validation=split.validation, progress=progress)
    except ValueError as exc:
        raise TrainingRefused(str(exc)) from exc
    metric = selection_metric(split.validation[1])
    return {
        "validation": {metric: validation_score(model.score, split.validation, metric)},
        "fit_seconds": round(time.perf_counter() - t0, 3),
        "stage_seconds": (report.validation or {}).get("stage_seconds"),
        "params": dict(report.params or model.get_params()),
    }


def refit_on_every_unit(job: FitJob, choice: Choice, progress: ProgressCallback | None) -> dict:
    """Fit the chosen configuration again on every unit; `choice.model` becomes that model."""
    t0 = time.perf_counter()
    # The chosen fit's weights are not published: let them go before the refit allocates its own
    # (at 20k items the linear path's matrix alone is 1.6 GB).
    model, choice.model = choice.model.refit_copy(), None
    gc.collect()
    if choice.name in choice.warmed:
        _warm_start(model, choice.warm, job.items)
    report = model.fit(job.X, progress=(lambda e: progress({**e, "stage": "refit"})) if progress else None)
    choice.model = model
    return {
        "units": int(job.X.shape[0]),
        "seconds": round(time.perf_counter() - t0, 3),
        "stage_seconds": (report.validation or {}).get("stage_seconds"),
    }


def _cpu_seconds() -> float:
    """CPU time of this process, every thread: on a shared machine wall time measures the neighbours,
    CPU time the fit (with AIREC_TRAIN_THREADS=1 it is the wall time the fit takes on a quiet one)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _warm_source(job: FitJob):
    """The active autoencoder's files, when the job asks for a warm start and there is one."""
    if not job.warm_from:
        return None
    files = folders.load_folder(Path(job.warm_from))
    if files.manifest.get("algorithm") != "autoencoder":
        return None
    return files


def _warm_start(model, warm, items: list[str]) -> bool:
    """Known items keep the active model's weights; items new since then start fresh."""
    if not hasattr(model, "warm_start_from"):
        return False
    index = {name: i for i, name in enumerate(warm.items)}
    old_index = np.array([index.get(name, -1) for name in items], dtype=np.int64)
    model.warm_start_from(warm.model, old_index)
    return True
