"""Apps built during the running test, so that their threads stop before the test's databases go.

A test that builds an app with create_app and leaves it running keeps its poller and impression writer
alive. Once the fixture drops that test's PostgreSQL database, the writer logs a traceback every
second. CPython 3.11 formats a traceback with ast.parse, and ast.parse in two threads at once can fail
with "SystemError: AST constructor recursion depth mismatch" (python/cpython#106905). The other thread
may be a later test's create_app, where werkzeug compiles its URL rules with ast.parse.
"""

from __future__ import annotations

#: Apps whose _build ran in this test, oldest first (tests/conftest.py records them).
built: list = []


def stop_all() -> None:
    """Stop the threads of every app built in this test that still runs them (idempotent)."""
    from airec.app import stop_background

    while built:
        app = built.pop()
        if "airec_threads_pid" in app.extensions:
            stop_background(app)
