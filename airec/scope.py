"""Which app a line of code works for, so that `create_app` is re-entrant (as in flaskr).

Module-level names (the `database` proxy every table uses, the served model) resolve to the objects
of the app whose request or background thread is running. Outside any app (the CLI, scripts, tests
that call services directly) they resolve to the ones bound last. A second app in the same process
therefore neither rebinds the first one's database nor replaces its model or stops its threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token, copy_context
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class AppScope:
    """One app's database and served model (`None` until bound)."""

    database: Any
    served: Any = None
    impressions: Any = None  # this app's airec.feedback.queue.ImpressionQueue, None when off
    threads: list[threading.Thread] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


_current: ContextVar[AppScope | None] = ContextVar("airec_app_scope", default=None)


def current() -> AppScope | None:
    """The scope of the app whose request or thread is running, if any."""
    return _current.get()


def enter(scope: AppScope) -> Token:
    """Work for `scope` until `leave(token)` (a request's lifetime)."""
    return _current.set(scope)


def leave(token: Token) -> None:
    _current.reset(token)


@contextmanager
def entered(scope: AppScope) -> Iterator[AppScope]:
    token = enter(scope)
    try:
        yield scope
    finally:
        leave(token)


def thread(
    target: Callable[..., Any], *, name: str, args: tuple = (), daemon: bool = True
) -> threading.Thread:
    """A thread that works for the app that creates it (it runs in a copy of the creator's context)."""
    context = copy_context()
    return threading.Thread(target=context.run, args=(target, *args), name=name, daemon=daemon)
