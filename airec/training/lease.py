"""The training lease a run holds from its first step to its last: one run at a time across every
process and host. While the run executes, a thread renews the lease and beats the run row; a renewal
that fails (another owner took the lease over) marks the lease lost, which stops the fit (what the
run publishes is fenced by the lease: airec.leases.while_holding). The lease is released when the run
ends, also after a database outage: once the database answers again, else it expires after its TTL.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from airec import leases, scope
from airec.config import Settings
from airec.db import database
from airec.training import connection, runrow

log = logging.getLogger(__name__)

TRAINING_LEASE = "training"


def heartbeat_seconds(settings: Settings) -> float:
    """How often a run renews its lease: eight times per TTL, so a few missed beats do not lose it."""
    return max(0.25, settings.train_lease_seconds / 8)


class RunLease:
    """`with RunLease(...) as lease:` renews the lease `owner` took for run `run_id` until the block
    ends, then releases it. `lease.lost()` turns true when the lease was lost or `should_stop()` (a
    worker shutting down) asks to end the run."""

    def __init__(
        self, run_id: int, settings: Settings, owner: str, should_stop: Callable[[], bool] | None = None
    ) -> None:
        self.run_id, self.owner = run_id, owner
        self.ttl, self.every = settings.train_lease_seconds, heartbeat_seconds(settings)
        self.should_stop = should_stop or (lambda: False)
        self._stop, self._lost = threading.Event(), threading.Event()
        self._beat = scope.thread(self._heartbeat, name=f"airec-train-beat-{run_id}")

    def __enter__(self) -> RunLease:
        self._beat.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._beat.join(timeout=self.every)  # no renewal (or connection close) after we return
        self.release()

    def lost(self) -> bool:
        return self._lost.is_set() or self.should_stop()

    def release(self, patience: float | None = None) -> None:
        """Free the lease; while the database is unreachable try again every second, up to the TTL
        (after which the lease has expired anyway, and the next run may take it)."""
        deadline = time.monotonic() + (self.ttl if patience is None else patience)
        while connection.connected(deadline):
            try:
                leases.release(TRAINING_LEASE, self.owner)
                return
            except connection.UNREACHABLE:
                if time.monotonic() >= deadline:
                    break
                time.sleep(1.0)
                connection.reconnect()
        log.warning("training lease not released (database unreachable); it expires after its TTL")

    def _heartbeat(self) -> None:
        try:
            while not self._stop.wait(self.every):
                if not self._beat_once():
                    return
        finally:
            database.close()

    def _beat_once(self) -> bool:
        """Renew the lease and beat the row; False when the lease is lost."""
        try:
            if not leases.renew(TRAINING_LEASE, self.owner, self.ttl):
                log.error(
                    "training run %d lost its lease; stopping it", self.run_id, extra={"run_id": self.run_id}
                )
                self._lost.set()
                return False
            runrow.beat(self.run_id)
        except Exception:
            log.warning("training heartbeat failed", exc_info=True)
            connection.reconnect()
        return True
