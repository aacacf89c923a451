"""Structured JSON logs on stdout, each line carrying the request id when there is one."""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import g, has_request_context


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context() and getattr(g, "request_id", None):
            entry["request_id"] = g.request_id
        for key in ("method", "path", "status", "duration_ms", "run_id", "version"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


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
