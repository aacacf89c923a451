"""Peewee migrations -- 007_model_version_error.py."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Why a version is `failed` (a folder that fails its checksums, or whose name differs from its
    manifest's version), so GET /api/v1/models can say it."""
    migrator.add_fields("model_versions", error=pw.TextField(null=True))


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_fields("model_versions", "error")
