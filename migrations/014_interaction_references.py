"""Peewee migrations -- 014_interaction_references.py."""

import peewee as pw
from peewee_migrate import Migrator

#: The references of interactions whose per-row checks PostgreSQL no longer runs (see migrate).
REFERENCES = (("record_id", "records"), ("user_id", "users"), ("item_id", "items"))


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """PostgreSQL: drop the foreign keys of `interactions` (to records, users and items); the writers and
    deleters keep every reference valid themselves, once per batch instead of once per row.

    Why: each stored interaction ran three referential-integrity triggers, each a lookup of the parent
    row with a row lock, and they were most of the server's time in a live import (COPY into the
    indexed table with them ~27-42k rows/s, without them ~72-125k, measured side by side on PostgreSQL
    15 here). What keeps the references valid without them (tests/test_integrity.py shows it for every
    writer and deleter, on both engines):
    - an interaction's record is inserted by the same transaction as the interaction (API ingest,
      import, restore), and a record is only ever deleted once no interaction names it;
    - its user is its record's user (copied from it), and records keep their foreign key to users,
      checked once per record: the record's insert holds the user row against deletion until commit;
    - its items come from the batch's get-or-create, which takes KEY SHARE locks on them, exactly the
      lock the triggers took, once per distinct item: a deletion of an item waits for the batch to
      commit and then sees its interactions;
    - deleting a user or an item removes its interactions by statement (there is no cascade any more),
      after the parent row is gone, so rows stored by a batch that committed meanwhile go too;
    - restore checks each reference of the loaded interactions with one anti-join before it commits.
    SQLite keeps its foreign keys: there they are checked in-process and cost a live import little."""
    if isinstance(database, pw.PostgresqlDatabase):
        for column, _ in REFERENCES:
            migrator.sql(
                "DO $$ DECLARE c text; BEGIN FOR c IN SELECT conname FROM pg_constraint"
                " WHERE conrelid = 'interactions'::regclass AND contype = 'f'"
                f" AND conkey = ARRAY[(SELECT attnum FROM pg_attribute WHERE attrelid = 'interactions'::regclass"
                f" AND attname = '{column}')] LOOP"
                " EXECUTE 'ALTER TABLE interactions DROP CONSTRAINT ' || quote_ident(c); END LOOP; END $$"
            )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    if isinstance(database, pw.PostgresqlDatabase):
        for column, table in REFERENCES:
            migrator.sql(
                f'ALTER TABLE interactions ADD CONSTRAINT "interactions_{column}_fkey" FOREIGN KEY ("{column}")'
                f' REFERENCES "{table}" ("id") ON DELETE CASCADE'
            )
