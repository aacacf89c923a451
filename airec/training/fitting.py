"""The fit itself: split, choose on validation, evaluate on test, write the model folder.

Pure computation on a matrix, with no database and no web framework, because it runs in a child
process (airec.training.isolation): a native crash there fails the run, not the server. The parent
(airec.training.publish) reads the data before and registers and activates the folder after.
"""

from __future__ import annotations

import gc
import inspect
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from airec.config import Settings
from airec.modelstore import folders
from airec.recsys.algorithms import ALGORITHMS
from airec.recsys.base import DataShape, ProgressCallback
from airec.recsys.evaluation import (
    DEFAULT_KS,
    MAX_HOLDOUT,
    Split,
    evaluate,
    make_split,
    selection_metric,
    validation_score,
)

AUTO_CANDIDATES = ("autoencoder", "ease", "itemknn", "popularity")
CHOICES = tuple(ALGORITHMS) + ("auto",)
#: Cut-offs of the stored held-out evaluation; the benchmark's largest (100), so top-k ties break alike.
EVAL_KS = (1, 5, *DEFAULT_KS)


class TrainingRefused(ValueError):
    """The request cannot be trained as asked (bad parameters, too little data, EASE too large)."""


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


def build_model(algorithm: str, params: dict[str, Any], settings: Settings):
    """Instantiate an algorithm, checking parameters against its constructor."""
    cls = ALGORITHMS[algorithm]
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise TrainingRefused(
            f"unknown parameter(s) for {algorithm}: {', '.join(unknown)}; "
            f"accepted: {', '.join(sorted(accepted))}"
        )
    kwargs = {k: v for k, v in settings.training_overrides().items() if k in accepted}
    if "max_items" in accepted:  # EASE, and the autoencoder's linear path: memory grows with items²
        kwargs["max_items"] = settings.ease_max_items
    kwargs.update(params)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise TrainingRefused(f"bad parameters for {algorithm}: {exc}") from exc


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
    split = make_split(
        job.X,
        "auto",
        holdout_fraction=settings.train_holdout_fraction,
        max_holdout=MAX_HOLDOUT,
        seed=settings.train_seed,
        kind="baskets" if job.baskets else None,
    )
    if split.validation[1].nnz == 0:
        raise TrainingRefused(
            "not enough data to train: no validation unit has an item to hold out "
            "(a user or basket needs at least 2 items to be held out; too few have)"
        )
    warm = _warm_source(job)
    candidates = AUTO_CANDIDATES if job.algorithm == "auto" else (job.algorithm,)
    fitted: dict[str, Any] = {}
    scores: dict[str, dict] = {}
    warmed: set[str] = set()
    shape = DataShape.of(job.X)
    for name in candidates:
        model = build_model(name, job.params if job.algorithm != "auto" else {}, settings)
        too_big = memory_refusal(model, shape, settings)
        if too_big:
            if job.algorithm != "auto":
                raise TrainingRefused(too_big)
            scores[name] = {"error": too_big}
            continue
        if warm is not None and _warm_start(model, warm, job.items):
            warmed.add(name)
        t0 = time.perf_counter()
        try:
            report = model.fit(split.train, validation=split.validation, progress=progress)
        except ValueError as exc:
            if job.algorithm != "auto":
                raise TrainingRefused(str(exc)) from exc
            scores[name] = {"error": str(exc)}
            continue
        metric = selection_metric(split.validation[1])
        scores[name] = {
            "validation": {metric: validation_score(model.score, split.validation, metric)},
            "fit_seconds": round(time.perf_counter() - t0, 3),
            "params": dict(report.params or model.get_params()),
        }
        fitted[name] = model
    if not fitted:
        reasons = "; ".join(score["error"] for score in scores.values())
        raise TrainingRefused(f"no algorithm could be trained: {reasons}")
    best = max(fitted, key=lambda n: next(iter(scores[n]["validation"].values())))
    model = fitted[best]
    evaluation = evaluate_split(model, split)
    refit = None
    if settings.train_refit:
        t0 = time.perf_counter()
        # The candidates' weights are not published: let them go before the refit allocates its own
        # (at 20k items the linear path's matrix alone is 1.6 GB).
        fitted.clear()
        model = model.refit_copy()
        gc.collect()
        if best in warmed:
            _warm_start(model, warm, job.items)
        model.fit(job.X, progress=(lambda e: progress({**e, "stage": "refit"})) if progress else None)
        refit = {"units": int(job.X.shape[0]), "seconds": round(time.perf_counter() - t0, 3)}
        evaluation["estimates"] = (
            "the published model, which is this configuration refitted on every unit, test units included"
        )
    manifest = {
        **job.manifest,
        "algorithm": best,
        "requested_algorithm": job.algorithm,
        "split": {
            "protocol": split.protocol,
            "seed": settings.train_seed,
            "holdout_fraction": settings.train_holdout_fraction,
            "max_holdout": MAX_HOLDOUT,
            "order": "canonical",
        },
        "params": scores[best]["params"],
        "validation": scores[best]["validation"],
        "evaluation": evaluation,
        "refit": refit,
        "candidates": scores if job.algorithm == "auto" else None,
        "warm_start": best in warmed,  # what happened, not what was asked (no active autoencoder: cold)
    }
    manifest["data"]["train_units"] = int(split.train.shape[0])
    manifest["training_seconds"] = round(time.perf_counter() - started, 3)
    manifest["training_cpu_seconds"] = round(_cpu_seconds() - cpu_started, 3)
    return model, manifest


def _cpu_seconds() -> float:
    """CPU time of this process, every thread: on a shared machine wall time measures the neighbours,
    CPU time the fit (with AIREC_TRAIN_THREADS=1 it is the wall time the fit takes on a quiet one)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def memory_refusal(model, shape: DataShape, settings: Settings) -> str | None:
    """Why a fit would not fit in AIREC_TRAIN_MAX_MEMORY, or None: better refused now with a message
    than killed by the kernel an hour in."""
    need, budget = model.peak_bytes(shape), settings.train_memory_budget
    if need <= budget:
        return None
    return (
        f"{model.name} on {shape.units} units x {shape.items} items needs about {_gib(need)} at its peak, "
        f"more than AIREC_TRAIN_MAX_MEMORY={_gib(budget)}: raise that setting, keep fewer items "
        "(AIREC_TRAIN_MAX_ITEMS, AIREC_TRAIN_MIN_ITEM_SUPPORT) or choose another algorithm"
    )


def _gib(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**28 else f"{size / 2**20:.0f} MiB"


def evaluate_split(model, split: Split) -> dict:
    """The model and a popularity baseline on the held-out test units, full catalogue."""
    popularity = ALGORITHMS["popularity"]()
    popularity.fit(split.train)
    X_in, X_hidden = split.test
    return {
        "protocol": split.protocol,
        "model": evaluate(model, X_in, X_hidden, ks=EVAL_KS),
        "popularity": evaluate(popularity, X_in, X_hidden, ks=EVAL_KS),
    }


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
