"""Peewee migrations -- 013_catalogue_changes.py."""

import datetime as dt

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """The catalogue's change log: one row per catalogue write, numbered by the sequence its version row
    carries, naming the items it changed (NULL: everything), so a worker whose masks are at sequence S
    reads the names changed after S instead of the whole catalogue. Pruned by the writers."""

    @migrator.create_model
    class CatalogueChange(pw.Model):
        seq = pw.BigIntegerField(primary_key=True)
        at = pw.DateTimeField(default=dt.datetime.utcnow)
        count = pw.IntegerField()
        names = pw.TextField(null=True)

        class Meta:
            table_name = "catalogue_changes"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("catalogue_changes")
