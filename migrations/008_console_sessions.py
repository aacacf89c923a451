"""Peewee migrations -- 008_console_sessions.py."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Console sessions live on the server: signing out deletes the row, so a copy of the cookie taken
    before is refused by every worker and host. Only the SHA-256 of the cookie's token is stored."""

    @migrator.create_model
    class ConsoleSession(pw.Model):
        token_hash = pw.CharField(max_length=64, primary_key=True)
        key_hash = pw.CharField(max_length=64, index=True)
        created_at = pw.DateTimeField()
        expires_at = pw.DateTimeField(index=True)

        class Meta:
            table_name = "console_sessions"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("console_sessions")
