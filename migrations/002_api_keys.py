"""Peewee migrations -- 002_api_keys.py."""

from contextlib import suppress

import peewee as pw
from peewee_migrate import Migrator


with suppress(ImportError):
    import playhouse.postgres_ext as pw_pext


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """API keys: name, role, a short public prefix and the SHA-256 of the key (never the key)."""
    @migrator.create_model
    class ApiKey(pw.Model):
        id = pw.AutoField()
        name = pw.CharField(max_length=64, unique=True)
        role = pw.CharField(max_length=16)
        prefix = pw.CharField(max_length=16)
        key_hash = pw.CharField(max_length=64, unique=True)
        created_at = pw.DateTimeField()
        last_used_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "api_keys"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop the keys."""
    migrator.remove_model('api_keys')
