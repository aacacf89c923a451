"""Peewee migrations -- 011_impressions.py."""

import peewee as pw
from peewee_migrate import Migrator


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """Impressions (each answer shown, airec.feedback) and their hourly counts with takes, so online take
    rates are summed from a few pre-aggregated rows; and A/B experiments between model versions."""

    @migrator.create_model
    class Impression(pw.Model):
        id = pw.BigAutoField()
        recommendation_id = pw.CharField(max_length=32, unique=True)
        route = pw.CharField(max_length=16)
        user = pw.CharField(max_length=256, null=True)
        model_version = pw.CharField(max_length=64, null=True)
        variant = pw.CharField(max_length=64, null=True)
        items = pw.TextField(default="[]")
        created_at = pw.DateTimeField(index=True)
        taken_position = pw.IntegerField(null=True)
        taken_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "impressions"
            indexes = ((("user", "created_at"), False),)

    @migrator.create_model
    class ImpressionCount(pw.Model):
        span = pw.CharField(max_length=8)
        period = pw.DateTimeField()
        route = pw.CharField(max_length=16)
        model_version = pw.CharField(max_length=64, default="")
        variant = pw.CharField(max_length=64, default="")
        position = pw.IntegerField()
        impressions = pw.BigIntegerField(default=0)
        takes = pw.BigIntegerField(default=0)

        class Meta:
            table_name = "impression_counts"
            primary_key = pw.CompositeKey(
                "span", "period", "route", "model_version", "variant", "position"
            )


    @migrator.create_model
    class Experiment(pw.Model):
        name = pw.CharField(max_length=64, primary_key=True)
        variants = pw.TextField(default="[]")
        status = pw.CharField(max_length=16, index=True)
        started_at = pw.DateTimeField()
        stopped_at = pw.DateTimeField(null=True)

        class Meta:
            table_name = "experiments"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    migrator.remove_model("experiments")
    migrator.remove_model("impression_counts")
    migrator.remove_model("impressions")
