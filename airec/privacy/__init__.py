"""Data rights: delete a user or an item (batched, beside live ingest), show a user everything stored
about them, keep interactions only AIREC_RETENTION_DAYS, and mark or retrain the models that learned
from deleted data. Which tables hold a user's or an item's rows is listed once, in registry.py."""
