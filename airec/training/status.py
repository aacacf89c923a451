"""The states of a training run, defined once: the run row, the API, the console and the worker all
compare against these (they are strings, so JSON and the database see the same words as before)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    """A training run's `status` column."""

    QUEUED = "queued"  # recorded, not started (AIREC_TRAINER=worker: waiting for a worker)
    RUNNING = "running"  # fitting or publishing under the training lease
    SUCCEEDED = "succeeded"  # a model was registered (and activated, unless `note` says why not)
    FAILED = "failed"  # ended without publishing; `error` says why

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED)


#: A run in one of these holds (or waits for) the training lease.
IN_FLIGHT = (RunStatus.QUEUED, RunStatus.RUNNING)
#: A run in one of these is over.
FINISHED = (RunStatus.SUCCEEDED, RunStatus.FAILED)
