"""Peewee migrations -- 010_audit_log.py."""

import datetime as dt

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """The audit log (who changed what, append-only) and the ledger of deletions (which interaction ids
    a user, item or retention deletion removed, so model versions trained on them can be marked)."""

    @migrator.create_model
    class AuditEntry(pw.Model):
        id = pw.AutoField()
        at = pw.DateTimeField(default=dt.datetime.utcnow, index=True)
        actor = pw.CharField(max_length=128, index=True)
        action = pw.CharField(max_length=32, index=True)
        target = pw.CharField(max_length=512, null=True)
        address = pw.CharField(max_length=64, null=True)
        details = pw.TextField(null=True)

        class Meta:
            table_name = "audit_log"

    @migrator.create_model
    class Deletion(pw.Model):
        id = pw.AutoField()
        at = pw.DateTimeField(default=dt.datetime.utcnow, index=True)
        kind = pw.CharField(max_length=16)
        interactions = pw.BigIntegerField(default=0)
        min_interaction_id = pw.BigIntegerField(null=True)

        class Meta:
            table_name = "deletions"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("deletions")
    migrator.remove_model("audit_log")
