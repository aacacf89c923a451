"""Peewee migrations -- 004_model_files.py."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Model folders stored in the database (AIREC_MODEL_STORE=database): one row per file with its
    checksum, its bytes in chunks."""

    @migrator.create_model
    class ModelFile(pw.Model):
        version = pw.CharField(max_length=64, index=True)
        name = pw.CharField(max_length=255)
        sha256 = pw.CharField(max_length=64)
        size = pw.BigIntegerField()
        parts = pw.IntegerField()

        class Meta:
            table_name = "model_files"
            primary_key = pw.CompositeKey("version", "name")

    @migrator.create_model
    class ModelFilePart(pw.Model):
        version = pw.CharField(max_length=64)
        name = pw.CharField(max_length=255)
        part = pw.IntegerField()
        data = pw.BlobField()

        class Meta:
            table_name = "model_file_parts"
            primary_key = pw.CompositeKey("version", "name", "part")


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("model_file_parts")
    migrator.remove_model("model_files")
