"""What a run may ask for: the algorithms, their parameters checked against their constructors, and
the memory a fit would need. Shared by the request's validation (before queueing) and the fit."""

from __future__ import annotations

import inspect
from typing import Any

from airec.config import Settings
from airec.recsys.algorithms import ALGORITHMS
from airec.recsys.base import DataShape
from airec.recsys.evaluation import DEFAULT_KS

AUTO_CANDIDATES = ("autoencoder", "ease", "itemknn", "popularity")
CHOICES = tuple(ALGORITHMS) + ("auto",)
#: Cut-offs of the stored held-out evaluation; the benchmark's largest (100), so top-k ties break alike.
EVAL_KS = (1, 5, *DEFAULT_KS)


class TrainingRefused(ValueError):
    """The request cannot be trained as asked (bad parameters, too little data, EASE too large)."""


def check_request(algorithm: str, params: dict, settings: Settings) -> None:
    """Refuse an unknown algorithm or bad parameters before a run is queued."""
    if algorithm not in CHOICES:
        raise TrainingRefused(f"unknown algorithm {algorithm!r}; choose one of {', '.join(CHOICES)}")
    if algorithm != "auto":
        build_model(algorithm, params, settings)
    elif params:
        raise TrainingRefused("'auto' trains every algorithm with its defaults and takes no params")


def build_model(algorithm: str, params: dict[str, Any], settings: Settings):
    """Instantiate an algorithm, checking parameters against its constructor."""
    cls = ALGORITHMS[algorithm]
    params = cls.current_params(params)  # a request under a parameter's old name (blend) still works
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
