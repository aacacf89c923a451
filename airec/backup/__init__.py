"""Backup and restore (`airec dump`, `airec restore`) and the bulk loading they share with `airec import`.

One dump is one zip file: a manifest (schema version, engine, per-table columns, row counts and SHA-256
checksums) and one member per table in PostgreSQL's COPY text format, which both engines read and
write, so a dump from SQLite restores into PostgreSQL and the other way round. The tables are found in
the database itself (every table but the migrations' own), not in a hand-kept list.
"""
