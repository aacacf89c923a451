"""Identifying answers, queueing their impressions, and attributing takes to them.

Every answer gets a `recommendation_id` (opaque, URL-safe, 16 characters from 96 random bits) and a
`variant` (None outside an experiment). Its impression goes to this worker's ImpressionQueue, written
off the request path. A stored event takes an impression when it names its recommendation_id and one
of its items, or, without an id, when its user was shown the item within AIREC_ATTRIBUTION_HOURS
before; only the most recent matching impression, at most once, never by a negative type.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Sequence

from airec import leases, scope
from airec.config import Settings
from airec.db import atomic_write, database
from airec.feedback import store
from airec.feedback.kinds import DEFAULT_TYPE, Route
from airec.feedback.queue import ImpressionQueue
from airec.prometheus import observe_dropped, observe_impressions, observe_take, observe_unknown_id
from airec.tables import Impression, utcnow

log = logging.getLogger(__name__)

#: How often one worker (claimed across all) deletes expired impressions.
RETENTION_EVERY_SECONDS = 600
#: A worker's first look, a while after it starts (not while it loads its model and warms up).
RETENTION_FIRST_SECONDS = 60


class _RandomIds:
    """96-bit ids from os.urandom, 12 bytes each, read 256 ids at a time: one system call per 256
    answers instead of one each (~8 us of a recommendation). The pool is base64url-encoded at once:
    12 bytes are 16 characters without padding, so each id is a slice of the text. A forked worker
    starts a pool of its own, so no two workers ever hand out the same bytes."""

    PER_READ = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = "", 0
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._pool, self._at = "", 0

    def next(self) -> str:
        with self._lock:
            if self._at >= len(self._pool):
                self._pool = base64.urlsafe_b64encode(os.urandom(12 * self.PER_READ)).decode("ascii")
                self._at = 0
            pool, at = self._pool, self._at
            self._at = at + 16
        return pool[at : at + 16]  # this pool's slice, even if another thread refills it meanwhile


_ids = _RandomIds()


def new_recommendation_id() -> str:
    """Opaque, unique and URL-safe: 16 characters of base64url over 96 random bits."""
    return _ids.next()


def issue(answer: dict, route: Route, user: str | None = None) -> dict:
    """Identify an answer (adds recommendation_id and variant) and queue its impression."""
    rid = new_recommendation_id()
    answer["recommendation_id"] = rid
    variant = answer.setdefault("variant", None)
    bound = scope.current()
    queue = bound.impressions if bound is not None else None
    if queue is not None:
        shown = [entry["item"] for entry in answer["items"]]
        queue.put((rid, route.value, user, answer.get("model_version"), variant, shown, utcnow()))
    return answer


def _write(batch: list[tuple]) -> None:
    with database.connection_context():
        store.write_impressions(batch)
    observe_impressions(batch)


def _drop(impression: tuple) -> None:
    observe_dropped(impression[3], impression[4])


def make_queue(settings: Settings) -> ImpressionQueue | None:
    """This app's impression queue (None with AIREC_IMPRESSIONS=off)."""
    if not settings.impressions:
        return None
    days = settings.impression_days
    next_pass = [time.monotonic() + RETENTION_FIRST_SECONDS]

    def housekeeping() -> None:
        if time.monotonic() < next_pass[0]:
            return
        next_pass[0] = time.monotonic() + RETENTION_EVERY_SECONDS
        slot = int(time.time() // RETENTION_EVERY_SECONDS)
        with database.connection_context():
            if leases.claim_slot("impression_retention_slot", slot):
                gone = store.delete_expired(days)
                if gone:
                    log.info("deleted %d impressions older than %d days", gone, days)

    return ImpressionQueue(_write, _drop, housekeeping=housekeeping)


def flush_pending() -> None:
    """Write this worker's queued impressions now (before attributing an event to them)."""
    bound = scope.current()
    if bound is not None and bound.impressions is not None and len(bound.impressions):
        bound.impressions.flush()


def attribute(records: Sequence[dict], settings: Settings) -> int:
    """Mark the impressions these stored records take; returns how many takes. Unknown
    recommendation_ids are counted (airec_unknown_recommendation_ids_total), never refused."""
    negative = settings.negative_type_set
    now = utcnow()
    events = [
        (r.get("user"), r["items"], _naive(r.get("timestamp")) or now, r.get("recommendation_id"))
        for r in records
        if (r.get("type") or DEFAULT_TYPE) not in negative
    ]
    named = [e for e in events if e[3] is not None]
    by_user = [e for e in events if e[3] is None and e[0] is not None]
    unknown = {rid for rid in (r.get("recommendation_id") for r in records) if rid is not None}
    if not named and not by_user and not unknown:
        return 0
    flush_pending()
    window = dt.timedelta(hours=settings.attribution_hours)

    def work() -> tuple[list[Impression], int]:
        impressions = store.by_ids(unknown)
        taken = [
            impression
            for _, items, when, rid in named
            if (impression := impressions.get(rid)) is not None and _take(impression, items, when)
        ]
        if by_user:
            taken += _take_by_user(by_user, window)
        return taken, len(unknown - impressions.keys())

    taken, unknown_ids = atomic_write(work)
    observe_unknown_id(unknown_ids)
    for impression in taken:  # counted once committed (a retried transaction must not count twice)
        observe_take(impression.model_version, impression.variant)
    return len(taken)


def _take_by_user(events: list[tuple], window: dt.timedelta) -> list[Impression]:
    times = [when for _, _, when, _ in events]
    latest = Impression.select(Impression.created_at).order_by(Impression.created_at.desc()).limit(1).scalar()
    if latest is None or latest < min(times) - window:
        return []  # nothing shown recently enough (e.g. an import of past events): no per-user query
    shown = store.shown_to((user for user, _, _, _ in events), min(times) - window, max(times))
    taken = []
    for user, items, when, _ in events:
        wanted = set(items)
        for impression in shown.get(user, ()):
            if impression.created_at > when or impression.created_at < when - window:
                continue
            if wanted & set(impression.items):
                if _take(impression, items, when):
                    taken.append(impression)
                break  # only the most recent matching impression
    return taken


def _take(impression: Impression, items: list[str], when: dt.datetime) -> bool:
    """Take `impression` at the best position among `items` it showed (once)."""
    if impression.taken_position is not None:
        return False
    shown = {name: position for position, name in enumerate(impression.items, start=1)}
    positions = [shown[name] for name in items if name in shown]
    return bool(positions) and store.mark_taken(impression, min(positions), when)


def _naive(moment: dt.datetime | None) -> dt.datetime | None:
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)
