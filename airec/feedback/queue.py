"""A bounded per-process queue of impressions, written to the database in batches by one thread.

A request only appends a tuple (never waits on the database): the writer flushes every second, or as
soon as a batch of FLUSH_AT has built up. When the queue is full the impression is dropped and counted,
so a slow database can never slow or block answers. `stop` flushes what is left (clean shutdown).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from airec import scope

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
FLUSH_AT = 1000
#: Impressions a worker holds at most before dropping: ten batches (a few MB).
CAPACITY = 10 * FLUSH_AT

#: (recommendation_id, route, user, model_version, variant, items, created_at)
Pending = tuple


class ImpressionQueue:
    def __init__(
        self,
        write: Callable[[list[Pending]], None],
        on_drop: Callable[[Pending], None],
        *,
        capacity: int = CAPACITY,
        flush_at: int = FLUSH_AT,
        every: float = FLUSH_SECONDS,
        housekeeping: Callable[[], None] | None = None,
    ) -> None:
        self._write, self._on_drop, self._housekeeping = write, on_drop, housekeeping
        self.capacity, self.flush_at, self.every = capacity, flush_at, every
        self._pending: deque = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def put(self, impression: Pending) -> bool:
        """Queue one impression; False (and counted as dropped) when the queue is full. Never blocks."""
        if len(self._pending) >= self.capacity:
            self._on_drop(impression)
            return False
        self._pending.append(impression)
        if len(self._pending) >= self.flush_at:
            self._wake.set()
        return True

    def __len__(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Write everything queued so far, in batches; returns how many were written."""
        written = 0
        with self._flush_lock:
            while self._pending:
                batch = []
                while self._pending and len(batch) < self.flush_at:
                    batch.append(self._pending.popleft())
                try:
                    self._write(batch)
                    written += len(batch)
                except Exception:  # the database blinked: these are lost, counted, and the writer goes on
                    log.exception("could not write %d impressions; counted as dropped", len(batch))
                    for impression in batch:
                        self._on_drop(impression)
        return written

    def start(self) -> threading.Thread:
        self._stop = threading.Event()
        stop = self._stop

        def loop() -> None:
            while not stop.is_set():
                self._wake.wait(self.every)
                self._wake.clear()
                self.flush()
                if self._housekeeping is not None and not stop.is_set():
                    try:
                        self._housekeeping()
                    except Exception:
                        log.exception("impression housekeeping failed")
            self.flush()

        self._thread = scope.thread(loop, name="airec-impressions")
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the writer after a last flush (and flush here if it is not running)."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout)
        self.flush()
