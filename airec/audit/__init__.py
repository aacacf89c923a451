"""The audit log: one appended row per change made through the API, the console or the CLI that is not
data ingest (who, what, on what, from where). No route edits or deletes a row; rows older than
AIREC_AUDIT_DAYS are pruned by the hourly housekeeping (airec.privacy.housekeeping)."""
