"""A training run's row: the only module that writes it while the run executes (status, progress,
heartbeat, outcome).

The outcome is written even across a database outage: `finish` tries again until the database
answers (or `patience` runs out), so a run never stays `running` because the database blinked at its
last step. Until then the row's heartbeat ages, and once the database is back any process may reap it
as interrupted; the outcome written afterwards replaces that guess with what happened.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np

from airec.db import atomic_write, db_now
from airec.tables import TrainingRun, utcnow
from airec.training.connection import UNREACHABLE, connected, reconnect
from airec.training.status import RunStatus

log = logging.getLogger(__name__)

#: Entries of per-epoch history a run row keeps (the newest).
HISTORY_KEPT = 500


def update(run_id: int, **fields) -> None:
    atomic_write(lambda: TrainingRun.update(**fields).where(TrainingRun.id == run_id).execute())


def beat(run_id: int) -> None:
    """The run is alive: its heartbeat is what reap_stale_runs reads."""
    update(run_id, heartbeat_at=db_now())


def mark_running(run_id: int) -> TrainingRun:
    update(run_id, status=RunStatus.RUNNING, started_at=utcnow(), heartbeat_at=db_now())
    return TrainingRun.get_by_id(run_id)


class Progress:
    """Receives the fit's events (epochs, losses): keeps the history and writes it to the row."""

    def __init__(self, run_id: int, forward: Callable[[dict], None] | None = None) -> None:
        self.run_id = run_id
        self.forward = forward
        self.history: list[dict] = []

    def __call__(self, event: dict) -> None:
        event = {k: (float(v) if isinstance(v, (np.floating, float)) else v) for k, v in event.items()}
        self.history.append(event)
        # The refit has no validation: its epochs move the progress on, the last validation loss stays.
        losses = {k: event[k] for k in ("train_loss", "val_loss") if k in event}
        update(
            self.run_id,
            epoch=int(event.get("epoch", 0) or 0),
            max_epochs=int(event.get("max_epochs", 0) or 0),
            **losses,
            history=self.kept(),
            heartbeat_at=db_now(),
        )
        if self.forward:
            self.forward(event)

    def kept(self) -> list[dict]:
        return self.history[-HISTORY_KEPT:]


def finish(
    run_id: int,
    status: RunStatus,
    *,
    patience: float = 3600.0,
    give_up: Callable[[], bool] = lambda: False,
    **fields,
) -> bool:
    """Write the run's outcome; while the database is unreachable, try again every second for up to
    `patience` seconds (or until `give_up()`). False when it could not be written."""
    deadline = time.monotonic() + patience
    while connected(deadline, give_up):
        try:
            update(run_id, status=status, finished_at=utcnow(), **fields)
            return True
        except UNREACHABLE as exc:
            log.warning(
                "training run %d: database unreachable (%s); recording the outcome later", run_id, exc
            )
            if time.monotonic() >= deadline or give_up():
                break
            time.sleep(1.0)
            reconnect()
    log.error("training run %d: could not record its outcome, the database stayed unreachable", run_id)
    return False
