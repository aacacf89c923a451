"""Peewee migrations -- 012_feedback_types.py."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Typed feedback on records: type (NULL is the default type `interaction`, so existing rows and the
    importer's COPY need nothing), value, and the recommendation_id the event names."""
    migrator.add_fields(
        "records",
        type=pw.CharField(max_length=64, null=True),
        value=pw.FloatField(null=True),
        recommendation_id=pw.CharField(max_length=64, null=True),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("records", "type", "value", "recommendation_id")
