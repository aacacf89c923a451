"""Peewee migrations -- 001_initial.py.

Some examples (model - class or model name)::

    > Model = migrator.orm['table_name']            # Return model in current state by name
    > Model = migrator.ModelClass                   # Return model in current state by name

    > migrator.sql(sql)                             # Run custom SQL
    > migrator.run(func, *args, **kwargs)           # Run python function with the given args
    > migrator.create_model(Model)                  # Create a model (could be used as decorator)
    > migrator.remove_model(model, cascade=True)    # Remove a model
    > migrator.add_fields(model, **fields)          # Add fields (allow_not_null=True skips default)
    > migrator.change_fields(model, **fields)       # Change fields
    > migrator.remove_fields(model, *field_names, cascade=True)
    > migrator.rename_field(model, old_field_name, new_field_name)
    > migrator.rename_table(model, new_table_name)
    > migrator.add_index(model, *col_names, unique=False)
    > migrator.add_not_null(model, *field_names)
    > migrator.add_default(model, field_name, default)
    > migrator.add_constraint(model, name, sql)
    > migrator.drop_index(model, *col_names)
    > migrator.drop_not_null(model, *field_names)
    > migrator.drop_constraints(model, *constraints)

"""

from contextlib import suppress

import peewee as pw
from peewee_migrate import Migrator


with suppress(ImportError):
    import playhouse.postgres_ext as pw_pext


def migrate(migrator: Migrator, database: pw.Database, *, fake=False):
    """The first schema: users, items, records, interactions, training runs, models, state."""
    @migrator.create_model
    class User(pw.Model):
        id = pw.AutoField()
        name = pw.CharField(max_length=256, unique=True)

        class Meta:
            table_name = "users"

    @migrator.create_model
    class Record(pw.Model):
        id = pw.AutoField()
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['users'], null=True, on_delete='CASCADE')
        timestamp = pw.DateTimeField(null=True)
        created_at = pw.DateTimeField()

        class Meta:
            table_name = "records"

    @migrator.create_model
    class Item(pw.Model):
        id = pw.AutoField()
        name = pw.CharField(max_length=256, unique=True)

        class Meta:
            table_name = "items"

    @migrator.create_model
    class Interaction(pw.Model):
        id = pw.AutoField()
        record = pw.ForeignKeyField(column_name='record_id', field='id', model=migrator.orm['records'], on_delete='CASCADE')
        user = pw.ForeignKeyField(column_name='user_id', field='id', model=migrator.orm['users'], null=True, on_delete='CASCADE')
        item = pw.ForeignKeyField(column_name='item_id', field='id', model=migrator.orm['items'], on_delete='CASCADE')

        class Meta:
            table_name = "interactions"
            indexes = [(('record', 'item'), True)]

    @migrator.create_model
    class ModelVersion(pw.Model):
        version = pw.CharField(max_length=64, primary_key=True)
        algorithm = pw.CharField(max_length=32)
        status = pw.CharField(default='ready', max_length=16)
        created_at = pw.DateTimeField()
        manifest = pw.TextField()

        class Meta:
            table_name = "model_versions"

    @migrator.create_model
    class State(pw.Model):
        key = pw.CharField(max_length=64, primary_key=True)
        value = pw.TextField(null=True)
        updated_at = pw.DateTimeField()

        class Meta:
            table_name = "state"

    @migrator.create_model
    class TrainingRun(pw.Model):
        id = pw.AutoField()
        status = pw.CharField(default='queued', index=True, max_length=16)
        algorithm = pw.CharField(max_length=32)
        params = pw.TextField()
        created_at = pw.DateTimeField()
        started_at = pw.DateTimeField(null=True)
        finished_at = pw.DateTimeField(null=True)
        heartbeat_at = pw.DateTimeField(null=True)
        epoch = pw.IntegerField(default=0)
        max_epochs = pw.IntegerField(default=0)
        train_loss = pw.FloatField(null=True)
        val_loss = pw.FloatField(null=True)
        history = pw.TextField()
        last_interaction_id = pw.IntegerField(default=0)
        model_version = pw.CharField(max_length=64, null=True)
        error = pw.TextField(null=True)
        trigger = pw.CharField(default='api', max_length=16)
        owner = pw.CharField(max_length=128, null=True)

        class Meta:
            table_name = "training_runs"


def rollback(migrator: Migrator, database: pw.Database, *, fake=False):
    """Drop everything."""
    migrator.remove_model('training_runs')

    migrator.remove_model('state')

    migrator.remove_model('model_versions')

    migrator.remove_model('interactions')

    migrator.remove_model('items')

    migrator.remove_model('records')

    migrator.remove_model('users')

