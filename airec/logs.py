"""Structured JSON logs on stdout, each line carrying the request id when there is one."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _request_id()
        if request_id:
            entry["request_id"] = request_id
        for key in ("client", "method", "path", "status", "duration_ms", "run_id", "version"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _request_id() -> str | None:
    """The current request's id; Flask is imported only where it is already loaded (not in the
    training child, which runs the ML core alone)."""
    flask = sys.modules.get("flask")
    if flask is None or not flask.has_request_context():
        return None
    return getattr(flask.g, "request_id", None)


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Send airec's logs to stdout; idempotent so tests can build many apps."""
    root = logging.getLogger("airec")
    root.setLevel(level.upper())
    if not any(getattr(h, "_airec", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler._airec = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
    for handler in root.handlers:
        if getattr(handler, "_airec", False):
            handler.setFormatter(
                JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
            )
