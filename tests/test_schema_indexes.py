"""Every index on interactions earns its write cost: lookups by record go through the unique
(record_id, item_id) index, and no second index on record_id is kept up to date per insert."""

from __future__ import annotations

import pytest

from airec.db import init_db, migrate


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def migrated(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/indexes.db"
    else:
        url = request.getfixturevalue("postgres_url")
    db = init_db(url)
    with db.connection_context():
        migrate(db)
        yield db
    db.close()


def test_interactions_keep_one_index_per_lookup(migrated):
    names = {index.name: index.columns for index in migrated.get_indexes("interactions")}
    assert "interaction_record_id" not in names
    assert names["interaction_record_id_item_id"] == ["record_id", "item_id"]
    assert names["interaction_user_id"] == ["user_id"] and names["interaction_item_id"] == ["item_id"]


def test_a_lookup_by_record_uses_the_unique_index(tmp_path):
    db = init_db(f"sqlite:///{tmp_path}/plan.db")
    with db.connection_context():
        migrate(db)
        plan = " ".join(
            str(row[-1])
            for row in db.execute_sql(
                "EXPLAIN QUERY PLAN SELECT item_id FROM interactions WHERE record_id = ?", (1,)
            )
        )
    assert "interaction_record_id_item_id" in plan and "SCAN" not in plan, plan
