"""Peewee tables. The schema itself is created by migrations/ (peewee-migrate)."""

from __future__ import annotations

import datetime as dt
import json

import peewee as pw

from airec.db import database
from airec.training.status import RunStatus


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class JSONField(pw.TextField):
    """JSON stored as text, so SQLite and PostgreSQL behave the same."""

    def db_value(self, value):
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value):
        return None if value is None else json.loads(value)


class BaseModel(pw.Model):
    class Meta:
        database = database


class User(BaseModel):
    name = pw.CharField(max_length=256, unique=True)

    class Meta:
        table_name = "users"


class Item(BaseModel):
    name = pw.CharField(max_length=256, unique=True)

    class Meta:
        table_name = "items"


class Record(BaseModel):
    """One POSTed record: a user's event or, without a user, a basket of its own."""

    user = pw.ForeignKeyField(User, null=True, backref="records", on_delete="CASCADE")
    timestamp = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    #: The feedback's type (view, cart, purchase, dislike, ...); NULL is the default type `interaction`,
    #: so rows written before types existed, and clients that send none, read the same (migration 012).
    type = pw.CharField(max_length=64, null=True)
    value = pw.FloatField(null=True)  # a rating, an amount: the client's number, stored as sent
    recommendation_id = pw.CharField(max_length=64, null=True)  # the answer that led to it, if named

    class Meta:
        table_name = "records"


class Interaction(BaseModel):
    """One (record, item) pair; user_id is copied from the record so histories need no join."""

    #: No index of its own: the unique (record, item) index leads with it (migration 005).
    record = pw.ForeignKeyField(Record, backref="interactions", on_delete="CASCADE", index=False)
    user = pw.ForeignKeyField(User, null=True, on_delete="CASCADE")
    item = pw.ForeignKeyField(Item, on_delete="CASCADE")

    class Meta:
        table_name = "interactions"
        indexes = ((("record", "item"), True),)


class TrainingRun(BaseModel):
    status = pw.CharField(max_length=16, default=RunStatus.QUEUED.value, index=True)
    algorithm = pw.CharField(max_length=32)
    params = JSONField(default=dict)
    created_at = pw.DateTimeField(default=utcnow)
    started_at = pw.DateTimeField(null=True)
    finished_at = pw.DateTimeField(null=True)
    heartbeat_at = pw.DateTimeField(null=True)
    epoch = pw.IntegerField(default=0)
    max_epochs = pw.IntegerField(default=0)
    train_loss = pw.FloatField(null=True)
    val_loss = pw.FloatField(null=True)
    history = JSONField(default=list)
    last_interaction_id = pw.IntegerField(default=0)
    model_version = pw.CharField(max_length=64, null=True)
    activated = pw.BooleanField(null=True)  # did the registered version become the active one
    note = pw.TextField(null=True)  # why it did not (a pin, or a worse held-out metric)
    error = pw.TextField(null=True)
    trigger = pw.CharField(max_length=16, default="api")
    owner = pw.CharField(max_length=128, null=True)

    class Meta:
        table_name = "training_runs"


class ModelVersion(BaseModel):
    """A trained model on disk; the manifest is mirrored here so every worker and host agrees."""

    version = pw.CharField(max_length=64, primary_key=True)
    algorithm = pw.CharField(max_length=32)
    status = pw.CharField(max_length=16, default="ready")
    created_at = pw.DateTimeField(default=utcnow)
    manifest = JSONField(default=dict)
    error = pw.TextField(null=True)  # why a `failed` version was refused (checksums, misnamed folder, ...)

    class Meta:
        table_name = "model_versions"


class ModelFile(BaseModel):
    """One file of a model folder stored in the database (AIREC_MODEL_STORE=database): its checksum and
    size; the bytes are in ModelFilePart rows, so no single value grows past the engines' limits."""

    version = pw.CharField(max_length=64, index=True)
    name = pw.CharField(max_length=255)
    sha256 = pw.CharField(max_length=64)
    size = pw.BigIntegerField()
    parts = pw.IntegerField()

    class Meta:
        table_name = "model_files"
        primary_key = pw.CompositeKey("version", "name")


class ModelFilePart(BaseModel):
    """A chunk of a stored model file (at most airec.modelstore.database.PART_BYTES)."""

    version = pw.CharField(max_length=64)
    name = pw.CharField(max_length=255)
    part = pw.IntegerField()
    data = pw.BlobField()

    class Meta:
        table_name = "model_file_parts"
        primary_key = pw.CompositeKey("version", "name", "part")


class State(BaseModel):
    """Small key/value rows: the active model pointer, locks/leases."""

    key = pw.CharField(max_length=64, primary_key=True)
    value = pw.TextField(null=True)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "state"


class ItemMeta(BaseModel):
    """What a shop says about an item (airec/catalogue): keyed by name, not by items.id, so an item can be
    described before any interaction names it without counting as a stored item."""

    name = pw.CharField(max_length=256, primary_key=True)
    categories = JSONField(default=list)
    labels = JSONField(default=list)
    hidden = pw.BooleanField(default=False)
    available_from = pw.DateTimeField(null=True)  # naive UTC
    available_until = pw.DateTimeField(null=True)  # naive UTC
    properties = JSONField(default=dict)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "item_catalogue"


class CatalogueChange(BaseModel):
    """One catalogue write (airec/catalogue/service.py): its sequence number (the one the version row
    carries after it), and the names it changed as a JSON list (NULL: everything, e.g. a raw bulk load),
    so workers catch up on a change instead of reading the whole catalogue."""

    seq = pw.BigIntegerField(primary_key=True)
    at = pw.DateTimeField(default=utcnow)
    count = pw.IntegerField()  # names in the list, -1 for everything
    names = pw.TextField(null=True)

    class Meta:
        table_name = "catalogue_changes"


class Impression(BaseModel):
    """One answer shown (airec.feedback): its id, route, user, model, variant, items in order, when; and
    which position a take took (an impression is taken at most once)."""

    id = pw.BigAutoField()
    recommendation_id = pw.CharField(max_length=32, unique=True)
    route = pw.CharField(max_length=16)
    user = pw.CharField(max_length=256, null=True)  # a name, not users.id: answers may name new users
    model_version = pw.CharField(max_length=64, null=True)
    variant = pw.CharField(max_length=64, null=True)
    items = JSONField(default=list)
    created_at = pw.DateTimeField(index=True)
    taken_position = pw.IntegerField(null=True)  # 1-based
    taken_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "impressions"
        indexes = ((("user", "created_at"), False),)


class ImpressionCount(BaseModel):
    """Impressions and takes per hour and per day, route, model version, variant and position (0: the
    whole answer; p >= 1: answers that had a p-th item, and takes of it), kept as they happen so GET
    /api/v1/stats/online sums whole days and the hours at the range's edges instead of scanning
    impressions."""

    span = pw.CharField(max_length=8)  # "hour" or "day" (airec.feedback.kinds.Span)
    period = pw.DateTimeField()  # the hour's or the day's start, UTC
    route = pw.CharField(max_length=16)
    model_version = pw.CharField(max_length=64, default="")
    variant = pw.CharField(max_length=64, default="")
    position = pw.IntegerField()
    impressions = pw.BigIntegerField(default=0)
    takes = pw.BigIntegerField(default=0)

    class Meta:
        table_name = "impression_counts"
        primary_key = pw.CompositeKey("span", "period", "route", "model_version", "variant", "position")


class Experiment(BaseModel):
    """An A/B experiment between model versions (airec.experiments); at most one is `running`."""

    name = pw.CharField(max_length=64, primary_key=True)
    variants = JSONField(default=list)  # [{"name", "model_version", "weight"}], the first is the baseline
    status = pw.CharField(max_length=16, index=True)
    started_at = pw.DateTimeField(default=utcnow)
    stopped_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "experiments"


class ApiKey(BaseModel):
    """An API key: only its SHA-256 hash is stored, with a short prefix to tell keys apart."""

    name = pw.CharField(max_length=64, unique=True)
    role = pw.CharField(max_length=16)
    prefix = pw.CharField(max_length=16)
    key_hash = pw.CharField(max_length=64, unique=True)
    created_at = pw.DateTimeField(default=utcnow)
    last_used_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "api_keys"


class ConsoleSession(BaseModel):
    """A console sign-in. The cookie holds a random token; this row holds its SHA-256 (a copy of the
    database opens no session), the hash of the API key it was opened with, and its absolute end. No
    row, no session: signing out deletes it on every worker and host at once (airec.console.session_store)."""

    token_hash = pw.CharField(max_length=64, primary_key=True)
    key_hash = pw.CharField(max_length=64, index=True)
    created_at = pw.DateTimeField(default=utcnow)
    expires_at = pw.DateTimeField(index=True)

    class Meta:
        table_name = "console_sessions"


class AuditEntry(BaseModel):
    """One change made through the API, the console or the CLI (airec/audit): appended, never edited."""

    at = pw.DateTimeField(default=utcnow, index=True)
    actor = pw.CharField(max_length=128, index=True)  # the key's name, `cli`, or a system task
    action = pw.CharField(max_length=32, index=True)
    target = pw.CharField(max_length=512, null=True)
    address = pw.CharField(max_length=64, null=True)
    details = JSONField(null=True)

    class Meta:
        table_name = "audit_log"


class Deletion(BaseModel):
    """A deletion of interactions (a user, an item, retention): when, and the lowest interaction id it
    removed, so model versions trained on that data are marked `contains_deleted_data`."""

    at = pw.DateTimeField(default=utcnow, index=True)
    kind = pw.CharField(max_length=16)
    interactions = pw.BigIntegerField(default=0)
    min_interaction_id = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "deletions"


ALL_TABLES = [
    User,
    Item,
    Record,
    Interaction,
    TrainingRun,
    ModelVersion,
    ModelFile,
    ModelFilePart,
    State,
    ItemMeta,
    CatalogueChange,
    Impression,
    ImpressionCount,
    Experiment,
    ApiKey,
    ConsoleSession,
    AuditEntry,
    Deletion,
]
