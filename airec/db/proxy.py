"""The `database` proxy every table uses, resolved per app (airec.scope)."""

from __future__ import annotations

import peewee

from airec import scope


class AppDatabase(peewee.DatabaseProxy):
    """The proxy every table uses: the database of the app whose request or thread is running
    (airec.scope), else the one `init_db` bound last. Two apps never share a binding."""

    __slots__ = ("_fallback",)

    @property
    def obj(self) -> peewee.Database | None:
        bound = scope.current()
        return bound.database if bound is not None else self._fallback

    @obj.setter
    def obj(self, value: peewee.Database | None) -> None:
        self._fallback = value

    def __setattr__(self, attr: str, value) -> None:
        if attr not in ("obj", "_fallback", "_callbacks", "_Model"):
            raise AttributeError("Cannot set attribute on proxy.")
        object.__setattr__(self, attr, value)


database = AppDatabase()


def is_sqlite() -> bool:
    """Whether the database bound now is SQLite (its locking and clock differ from PostgreSQL's)."""
    return isinstance(database.obj, peewee.SqliteDatabase)
