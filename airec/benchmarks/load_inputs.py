"""What a load test sends: API keys made directly in the database, and the request bodies wrk cycles
through. Shared by the serving, catalogue and ingest benchmarks."""

from __future__ import annotations

import json
from pathlib import Path


def make_keys(database_url: str) -> dict[str, str]:
    """Migrate and create one key per role, directly in the database."""
    from airec.auth.roles import KEY_ROLES
    from airec.auth.service import create_key
    from airec.db import init_db, migrate

    db = init_db(database_url)
    with db.connection_context():
        migrate(db)
        keys = {role: create_key(name=f"bench-{role}", role=role)[1] for role in KEY_ROLES}
    db.close()
    return keys


def write_bodies(path: Path, sets: list[list[str]], k: int = 10, **extra) -> Path:
    """wrk's request bodies, one JSON recommendation request (`sets` item names, top `k`) a line;
    `extra` keys (e.g. catalogue filters) go into every body."""
    path.write_text("".join(json.dumps({"items": s, "k": k, **extra}) + "\n" for s in sets), encoding="utf-8")
    return path
