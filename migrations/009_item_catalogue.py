"""Peewee migrations -- 009_item_catalogue.py."""

import datetime as dt

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """The item catalogue: categories, labels, visibility and free properties per item name (rows for
    names no interaction holds yet are allowed, so the key is the name, not items.id)."""

    @migrator.create_model
    class ItemMeta(pw.Model):
        name = pw.CharField(max_length=256, primary_key=True)
        categories = pw.TextField(default="[]")
        labels = pw.TextField(default="[]")
        hidden = pw.BooleanField(default=False)
        available_from = pw.DateTimeField(null=True)
        available_until = pw.DateTimeField(null=True)
        properties = pw.TextField(default="{}")
        updated_at = pw.DateTimeField(default=dt.datetime.utcnow)

        class Meta:
            table_name = "item_catalogue"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("item_catalogue")
