"""The counts a dashboard polls (stats, items), answered from memory for AIREC_READ_CACHE_SECONDS
(default 1).

Each of them COUNTs tables, and a dashboard asks every few seconds from every open tab. Training runs
and model versions are not cached: an operator who activates a version (from the API, the console or
the command line, in any process) must see it at once. An
answer is kept per worker, per full path (query string included), for the setting's seconds from the
moment it was read; a write this worker answers (any successful POST, PUT, PATCH or DELETE) drops
them all at once, so a client that writes and then reads through the same worker sees its write.
Another worker's answer may be that many seconds old. Access control runs before the cache is
consulted: a cached answer is only ever given to a request that may see it.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

from flask import Flask, current_app, request

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReadCache:
    """path -> (expires, body, status, headers); ttl 0 turns it off."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic, max_entries: int = 256):
        self.ttl = float(ttl)
        self.clock = clock
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, bytes, int, list]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bytes, int, list] | None:
        entry = self._entries.get(key)
        if entry is None or self.clock() >= entry[0]:
            return None
        return entry[1:]

    def put(self, key: str, read_at: float, body: bytes, status: int, headers: list) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:  # bounded: query strings are the client's
                self._entries.clear()
            self._entries[key] = (read_at + self.ttl, body, status, headers)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def cached_read(view: Callable) -> Callable:
    """Decorate a view's GET (outermost, above flask-smorest's decorators): 200 answers are kept."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        cache: ReadCache | None = current_app.extensions.get("airec_read_cache")
        if cache is None or cache.ttl <= 0:
            return view(*args, **kwargs)
        key = request.full_path
        hit = cache.get(key)
        if hit is not None:
            body, status, headers = hit
            return current_app.response_class(body, status=status, headers=headers)
        read_at = cache.clock()  # before the read: an entry can only expire early, never late
        response = current_app.make_response(view(*args, **kwargs))
        if response.status_code == 200 and not response.is_streamed:
            headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
            cache.put(key, read_at, response.get_data(), 200, headers)
        return response

    return wrapper


def init_read_cache(app: Flask, ttl: float) -> None:
    cache = ReadCache(ttl)
    app.extensions["airec_read_cache"] = cache

    @app.after_request
    def _writes_clear_the_cache(response):
        if request.method not in SAFE_METHODS and response.status_code < 400:
            cache.clear()
        return response
