"""No interaction ever names a missing record, user or item (issue 21, live import): on PostgreSQL the
interactions table has no foreign keys (migration 014), so every writer (API ingest, `airec import`,
restore) and every deleter (DELETE user, DELETE item, retention) keeps the references valid itself.

Each race is played deterministically: a writer stops after its get-or-create (holding what it looked
up) while a deletion of the same user or item runs; the deletion must wait for the writer's commit
and then leave nothing dangling. On SQLite the single write lock serialises them; the same checks run.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator

import pytest

from airec.db import atomic_write, database, init_db, is_sqlite, migrate
from airec.tables import Interaction, Item, User

OLD = dt.datetime(2020, 1, 1)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/integrity.db"
        return
    from tests.pg_helpers import fresh_database

    with fresh_database("airec_h17") as pg:
        yield pg


@pytest.fixture
def db(url: str) -> Iterator:
    db = init_db(url)
    db.connect()
    migrate(db)
    yield db
    db.close()


def dangling(db) -> list[tuple]:
    """Interactions naming a missing record, user or item, or a user other than their record's."""
    return list(
        db.execute_sql(
            "SELECT i.id, i.record_id, i.user_id, i.item_id FROM interactions i"
            " LEFT JOIN records r ON r.id = i.record_id LEFT JOIN items t ON t.id = i.item_id"
            " LEFT JOIN users u ON u.id = i.user_id"
            " WHERE r.id IS NULL OR t.id IS NULL OR (i.user_id IS NOT NULL AND u.id IS NULL)"
            " OR i.user_id IS DISTINCT FROM r.user_id"
        )
    )


def interaction_foreign_keys(db) -> list[str]:
    if is_sqlite():
        return sorted(row[2] for row in db.execute_sql("PRAGMA foreign_key_list(interactions)"))
    return sorted(
        row[0]
        for row in db.execute_sql(
            "SELECT confrelid::regclass::text FROM pg_constraint"
            " WHERE conrelid = 'interactions'::regclass AND contype = 'f'"
        )
    )


def _write(writer: str, records: list[dict]) -> dict:
    if writer == "import":
        from airec.ingestion.copying import copy_records

        return copy_records(records, max_items_per_record=100)
    from airec.ingestion.service import ingest_records

    return ingest_records(records)


class Paused:
    """Stops a writer right after its get-or-create (at ids_commit_in_order) until released."""

    def __init__(self, monkeypatch, writer: str):
        import airec.ingestion.copying as copying
        import airec.ingestion.service as service

        module = copying if writer == "import" else service
        original = module.ids_commit_in_order
        self.reached, self.go = threading.Event(), threading.Event()

        def paused() -> None:
            self.reached.set()
            assert self.go.wait(20), "never released"
            original()

        monkeypatch.setattr(module, "ids_commit_in_order", paused)


def _in_thread(fn, out: dict, key: str) -> threading.Thread:
    def run() -> None:
        with database.connection_context():
            try:
                out[key] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed to the test
                out[key] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _deleter(kind: str):
    from airec.privacy import retention, service

    if kind == "user":
        return lambda: service.delete_user("old")[0]
    if kind == "item":
        return lambda: service.delete_item("x")[0]
    return lambda: retention.purge(30)


WRITERS = ["ingest", pytest.param("import", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("deleter", ["user", "item", "retention"])
def test_a_deletion_racing_a_writer_leaves_no_interaction_dangling(db, url, writer, deleter, monkeypatch):
    if writer == "import" and is_sqlite():
        pytest.skip("`airec import` stores with COPY on PostgreSQL only (SQLite: API ingest's code)")
    _write("ingest", [{"user": "old", "items": ["x", "y"], "timestamp": OLD}])
    # the writer names what the deletion removes: the user's (old) or the item's (x)
    new = {"user": "old" if deleter == "user" else "new", "items": ["x"]}
    paused = Paused(monkeypatch, writer)
    out: dict = {}
    writing = _in_thread(lambda: _write(writer, [new]), out, "writer")
    assert paused.reached.wait(20)
    deleting = _in_thread(_deleter(deleter), out, "deleter")
    deleting.join(0.7)
    assert deleting.is_alive(), "the deletion did not wait for the writer holding the rows it removes"
    paused.go.set()
    writing.join(20)
    deleting.join(20)
    assert not writing.is_alive() and not deleting.is_alive()
    assert out["writer"] == {"records": 1, "interactions": 1}, out["writer"]
    assert not isinstance(out["deleter"], BaseException), out["deleter"]
    assert dangling(db) == []
    names = {name for (name,) in db.execute_sql("SELECT name FROM items")}
    rows = list(Interaction.select(User.name, Item.name).join(User).switch(Interaction).join(Item).tuples())
    if deleter == "user":  # the user's row committed meanwhile went with the user
        assert rows == [] and User.select().where(User.name == "old").count() == 0
        assert out["deleter"]["removed"]["interactions"] == 3
    elif deleter == "item":  # the item's too
        assert rows == [("old", "y")] and names == {"y"}
        assert out["deleter"]["removed"]["interactions"] == 2
    else:  # retention took the old rows; the new one keeps x (the old user and y go)
        assert rows == [("new", "x")] and names == {"x"}
        assert out["deleter"]["interactions"] == 2


@pytest.mark.postgres
@pytest.mark.parametrize("writer", ["ingest", "import"])
def test_a_writer_looking_up_an_item_being_deleted_creates_it_afresh(db, url, writer):
    """Another session is deleting x (row locked, not committed) when the writer looks x up: the lookup
    waits for that commit, finds x gone and creates it again; a lookup that did not wait would return
    the deleted id and the writer would store a row naming it."""
    import psycopg2

    if is_sqlite():
        pytest.skip("PostgreSQL only")
    _write("ingest", [{"user": "old", "items": ["x"]}])
    (gone,) = db.execute_sql("SELECT id FROM items WHERE name = 'x'").fetchone()
    other = psycopg2.connect(url)
    cursor = other.cursor()
    cursor.execute("SELECT id FROM items WHERE name = 'x' FOR UPDATE")
    cursor.execute("DELETE FROM interactions")
    cursor.execute("DELETE FROM records")
    cursor.execute("DELETE FROM items WHERE name = 'x'")
    out: dict = {}
    writing = _in_thread(lambda: _write(writer, [{"user": "new", "items": ["x"]}]), out, "writer")
    writing.join(0.7)
    assert writing.is_alive(), "the lookup did not wait for the deletion holding x"
    other.commit()
    other.close()
    writing.join(20)
    assert out["writer"] == {"records": 1, "interactions": 1}, out["writer"]
    assert dangling(db) == []
    (now,) = db.execute_sql("SELECT id FROM items WHERE name = 'x'").fetchone()
    assert now != gone


def test_the_migration_drops_interactions_foreign_keys_on_postgresql_only_and_keeps_the_rows(url):
    """Migration 014 on a populated database: the rows stay, PostgreSQL loses the three foreign keys
    of interactions (SQLite keeps them), and rolling it back adds them again, checked against the rows."""
    from peewee_migrate import Router

    from airec.db.migrations import migrations_dir

    db = init_db(url)
    db.connect()
    router = Router(db, migrate_dir=str(migrations_dir()))
    router.run("013_catalogue_changes")
    _write("ingest", [{"user": f"u{n}", "items": [f"i{n}", f"i{n + 1}"]} for n in range(50)])
    assert interaction_foreign_keys(db) == ["items", "records", "users"]
    migrate(db)
    assert interaction_foreign_keys(db) == ([] if not is_sqlite() else ["items", "records", "users"])
    assert Interaction.select().count() == 100 and dangling(db) == []
    Router(db, migrate_dir=str(migrations_dir())).rollback()
    assert interaction_foreign_keys(db) == ["items", "records", "users"]
    migrate(db)
    db.close()


def test_a_load_naming_a_missing_item_is_refused_and_leaves_nothing(url, db):
    """Restore and the empty-database import load with the checks set aside (airec.backup.bulk): on
    PostgreSQL, where interactions have no foreign keys, the load checks each reference itself; SQLite
    checks its foreign keys once at the end."""
    import contextlib

    from airec.backup.bulk import ForeignKeyViolation, load_bare, sqlite_foreign_keys_off

    _write("ingest", [{"user": "u", "items": ["x"]}])

    def load() -> None:
        db.execute_sql(
            "INSERT INTO interactions (record_id, user_id, item_id) SELECT id, user_id, 999 FROM records"
        )

    tables = ["users", "items", "records", "interactions"]
    message = "names a missing row of items" if is_sqlite() else "item_id 999 names no row of items"
    with (
        sqlite_foreign_keys_off(db) if is_sqlite() else contextlib.nullcontext(),
        pytest.raises(ForeignKeyViolation, match=message),
    ):
        atomic_write(lambda: load_bare(db, tables, load))
    assert Interaction.select().count() == 1 and dangling(db) == []
