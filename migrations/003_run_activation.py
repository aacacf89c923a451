"""Peewee migrations -- 003_run_activation.py."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """A run says whether the version it registered became active, and if not, why."""
    migrator.add_fields(
        "training_runs",
        activated=pw.BooleanField(null=True),
        note=pw.TextField(null=True),
    )


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("training_runs", "activated", "note")
