"""The schema: migrations from migrations/ (peewee-migrate), applied at start-up or once the database
is back.

The files live in the checkout's top-level migrations/ folder; the wheel carries them as
airec/migrations (setup.py maps the folder into the package), so an installed service finds them
beside its code and a checkout finds them at the top.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import peewee

from airec.db.proxy import database

log = logging.getLogger(__name__)

PACKAGE_MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
CHECKOUT_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


class MigrationsMissing(RuntimeError):
    """Neither the installed package nor a checkout holds the migrations: a broken install."""


def migrations_dir() -> Path:
    """The installed package's migrations if it has them, else the checkout's."""
    for folder in (PACKAGE_MIGRATIONS, CHECKOUT_MIGRATIONS):
        if any(folder.glob("[0-9][0-9][0-9]_*.py")):
            return folder
    raise MigrationsMissing(
        f"no migrations found in {PACKAGE_MIGRATIONS} (installed package) nor in {CHECKOUT_MIGRATIONS} "
        "(checkout): reinstall airec from a wheel or sdist built by its setup.py, which carries them"
    )


class SchemaGate:
    """Migrations run at start-up, or, if the database is unreachable then, on the first request after
    it returns. So the process starts (and /healthz answers) with the database down: no crash loop."""

    retry_seconds = 2.0

    def __init__(self, db: peewee.Database):
        self.db = db
        self.ready = False
        self._lock = threading.Lock()
        self._next_try = 0.0
        if not self.try_now():
            log.error("database unreachable at start-up; serving 503 until it returns")

    def try_now(self) -> bool:
        with self._lock:
            if self.ready:
                return True
            was_closed = self.db.is_closed()
            try:
                migrate(self.db)
                self.ready = True
            except (peewee.OperationalError, peewee.InterfaceError) as exc:
                log.warning("cannot migrate the database yet: %s", exc)
                self._next_try = time.monotonic() + self.retry_seconds
            finally:
                if was_closed and not self.db.is_closed():
                    self.db.close()
            return self.ready

    def require(self) -> None:
        """Raise OperationalError (answered 503 + Retry-After) until the schema is in place."""
        if self.ready:
            return
        if time.monotonic() < self._next_try or not self.try_now():
            raise peewee.OperationalError("the database schema is not ready yet")


def migrate(db: peewee.Database | None = None) -> list[str]:
    """Apply pending migrations from migrations/ (peewee-migrate). Returns the names applied."""
    from peewee_migrate import Router

    target = db or database.obj
    router = Router(target, migrate_dir=str(migrations_dir()), logger=logging.getLogger("airec.migrate"))
    todo = list(router.diff)
    if todo:
        router.run()
    return todo
