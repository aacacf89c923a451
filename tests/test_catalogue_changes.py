"""Workers catch their catalogue masks up from the change log: after any mix of writes the masks a worker
patched equal the masks built from the whole table, and it reads the whole table again only when the
log cannot say what changed (pruned, a restore, too many names, a raw bulk load)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from airec.catalogue import masks as masks_module
from airec.catalogue import service
from airec.catalogue.masks import CatalogueMasks, CatalogueWatch, Rules
from airec.db import atomic_write, init_db, migrate
from airec.tables import ItemMeta

NAMES = [f"i{n}" for n in range(40)] + ["a/b", "only-described-later"]
INDEX = {name: i for i, name in enumerate(NAMES)}
FUTURE = dt.datetime(2999, 1, 1, tzinfo=dt.UTC)
PAST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass
class Model:
    """What the watch needs of a served model."""

    version: str
    index: dict[str, int]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request, tmp_path) -> Iterator[None]:
    if request.param == "sqlite":
        url_context = None
        url = f"sqlite:///{tmp_path}/changes.db"
    else:
        from tests.pg_helpers import fresh_database

        url_context = fresh_database("h15_catalogue_changes")
        url = url_context.__enter__()
    db = init_db(url)
    db.connect()
    migrate(db)
    try:
        yield
    finally:
        db.close()
        if url_context is not None:
            url_context.__exit__(None, None, None)


def described_catalogue() -> None:
    """Every kind of field on some of the items, one item nobody's model knows."""
    entries = []
    for n in range(40):
        entry: dict = {"item": f"i{n}", "categories": [f"c{n % 4}", f"c{n % 4}/s{n % 3}"]}
        if n % 5 == 0:
            entry["labels"] = ["sale", f"brand{n % 2}"]
        if n % 7 == 0:
            entry["hidden"] = True
        if n % 9 == 0:
            entry["available_from"] = FUTURE
        if n % 11 == 1:
            entry["available_until"] = PAST
        entries.append(entry)
    entries.append({"item": "a/b", "categories": ["c1"], "labels": ["sale"]})
    entries.append({"item": "not-in-the-model", "categories": ["c1"], "hidden": True})
    service.upsert_many(entries)


def a_mix_of_changes() -> None:
    from airec.privacy.service import delete_item

    service.update("i1", {"hidden": True})  # hide
    service.update("i7", {"hidden": False})  # unhide
    service.update("i2", {"categories": ["c9/x/y"]})  # category change, to a new one
    service.update("i3", {"categories": []})  # out of every category
    service.update("i5", {"labels": ["brand1"]})  # label change (loses 'sale')
    service.update("i6", {"labels": ["sale", "new-label"]})  # gains labels
    service.update("i9", {"available_from": None})  # window opens
    service.update("i17", {"available_until": PAST})  # window closes
    service.update("i13", {"available_from": FUTURE, "available_until": None})
    service.replace("i14", {"labels": ["sale"]})  # PUT: everything else back to defaults
    delete_item("i15")  # the entry deleted (via privacy)
    service.upsert_many(  # a bulk write: a new entry for a known name, and a change
        [{"item": "only-described-later", "categories": ["c0"]}, {"item": "i16", "hidden": True}]
    )
    service.update("a/b", {"categories": ["c2"], "hidden": True})
    service.update("not-in-the-model", {"hidden": False})
    service.update("i1", {"hidden": False})  # hidden and shown again within the same catch-up
    service.update("i1", {"hidden": True})


def snapshot(masks: CatalogueMasks) -> dict:
    """What a request can see of the masks (None arrays as the values they stand for)."""
    n = masks.n_items
    now = time.time()
    rules = [
        Rules(),
        Rules.of(["c0"]),
        Rules.of(["c1", "c9/x"]),
        Rules.of(["c2/s1"]),
        Rules.of(labels=["sale"]),
        Rules.of(exclude_labels=["brand1"]),
        Rules.of(["c1"], ["sale"], ["new-label"]),
    ]

    def postings(by_key: dict[str, np.ndarray]) -> dict[str, list[int]]:
        return {key: sorted(items.tolist()) for key, items in by_key.items() if len(items)}

    blocked = [masks.blocked(rule, now) for rule in rules]
    return {
        "hidden": (masks.hidden if masks.hidden is not None else np.zeros(n, dtype=bool)).tolist(),
        "starts": (masks.starts if masks.starts is not None else np.full(n, -np.inf)).tolist(),
        "ends": (masks.ends if masks.ends is not None else np.full(n, np.inf)).tolist(),
        "categories": postings(masks.by_category),
        "labels": postings(masks.by_label),
        "blocked": [np.zeros(n, dtype=bool).tolist() if b is None else b.tolist() for b in blocked],
    }


def test_changes_applied_to_the_masks_equal_a_full_build(engine):
    described_catalogue()
    before = CatalogueMasks.build(INDEX, "m1", service.catalogue_version())
    a_mix_of_changes()
    version = service.catalogue_version()
    caught_up = CatalogueWatch._caught_up(before, INDEX, version)
    full = CatalogueMasks.build(INDEX, "m1", version)
    assert caught_up is not None and caught_up is not before
    assert caught_up.version == version
    assert snapshot(caught_up) == snapshot(full)
    assert snapshot(before) != snapshot(full)
    # and again on top of the patched masks (the keys a change wrote are the ones the next one removes)
    service.update("i2", {"categories": ["c0"], "labels": []})
    service.update("i6", {"labels": []})
    service.update("i1", {"hidden": False})
    again = CatalogueWatch._caught_up(caught_up, INDEX, service.catalogue_version())
    assert snapshot(again) == snapshot(CatalogueMasks.build(INDEX, "m1", service.catalogue_version()))


def test_versions_are_numbered_in_order_and_the_log_names_what_changed(engine):
    service.update("x", {"hidden": True})
    epoch, first = service.parse_version(service.catalogue_version())
    service.upsert_many([{"item": "y"}, {"item": "z"}])
    assert service.parse_version(service.catalogue_version()) == (epoch, first + 1)
    assert service.changes_after(first - 1, first + 1, most=10) == ["x", "y", "z"]
    assert service.changes_after(first, first + 1, most=1) is None  # more names than worth reading
    assert service.changes_after(first - 2, first + 1, most=10) is None  # reaches before the log


@dataclass
class Counted:
    builds: int = 0


@pytest.fixture
def counted_builds(monkeypatch) -> Counted:
    """Counts full builds; every request reads the version row."""
    counted = Counted()
    real = CatalogueMasks.build.__func__

    def build(cls, *args, **kwargs):
        counted.builds += 1
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(CatalogueMasks, "build", classmethod(build))
    monkeypatch.setattr(masks_module, "POLL_SECONDS", 0.0)
    return counted


def test_the_watch_reads_only_the_changes_and_rebuilds_when_the_log_cannot_say(
    engine, counted_builds, monkeypatch
):
    described_catalogue()
    watch, model = CatalogueWatch(), Model("m1", INDEX)
    assert watch.masks_for(model).blocked(Rules())[INDEX["i7"]]  # i7 is hidden
    assert counted_builds.builds == 1
    service.update("i7", {"hidden": False})
    service.update("i2", {"hidden": True})
    masks = watch.masks_for(model)
    assert not masks.blocked(Rules())[INDEX["i7"]] and masks.blocked(Rules())[INDEX["i2"]]
    assert counted_builds.builds == 1, "two PATCHes are caught up on, not rebuilt"

    monkeypatch.setattr(masks_module, "DELTA_MOST_NAMES", 1)
    service.update("i7", {"hidden": True})
    service.update("i3", {"hidden": True})
    assert watch.masks_for(model).blocked(Rules())[INDEX["i3"]]
    assert counted_builds.builds == 2, "more names than a catch-up is worth: rebuilt"
    monkeypatch.setattr(masks_module, "DELTA_MOST_NAMES", 20_000)

    monkeypatch.setattr(service, "KEEP_CHANGES", 1)
    service.update("i4", {"hidden": True})
    service.update("i5", {"hidden": True})  # prunes the change before it
    assert watch.masks_for(model).blocked(Rules())[INDEX["i4"]]
    assert counted_builds.builds == 3, "the log no longer reaches back: rebuilt"
    monkeypatch.setattr(service, "KEEP_CHANGES", 1000)

    atomic_write(service.start_new_history)  # what a restore does
    assert service.changes_after(0, 10**6, most=10) is None
    watch.masks_for(model)
    assert counted_builds.builds == 4, "a new history: rebuilt"

    def raw_bulk_load() -> None:  # a loader that writes the table itself says 'everything changed'
        ItemMeta.insert(name="i8", hidden=True).on_conflict(
            conflict_target=[ItemMeta.name], preserve=[ItemMeta.hidden]
        ).execute()
        service.record_change(None)

    atomic_write(raw_bulk_load)
    assert watch.masks_for(model).blocked(Rules())[INDEX["i8"]]
    assert counted_builds.builds == 5

    watch.masks_for(Model("m2", INDEX))
    assert counted_builds.builds == 6, "a new model gets masks of its own"
    service.update("i8", {"hidden": False})
    assert not watch.masks_for(Model("m2", INDEX)).blocked(Rules())[INDEX["i8"]]
    assert counted_builds.builds == 6


def test_a_version_written_before_the_log_is_rebuilt_from(engine, counted_builds):
    """A database migrated with a version row from before the change log (no sequence in it)."""
    from airec.tables import State, utcnow

    described_catalogue()
    State.update(value="1700000000000000000-abcd", updated_at=utcnow()).where(
        State.key == service.VERSION_KEY
    ).execute()
    watch, model = CatalogueWatch(), Model("m1", INDEX)
    watch.masks_for(model)
    service.update("i7", {"hidden": False})
    assert service.parse_version(service.catalogue_version())[1] is not None
    assert not watch.masks_for(model).blocked(Rules())[INDEX["i7"]]
    assert counted_builds.builds == 2
    service.update("i7", {"hidden": True})
    assert watch.masks_for(model).blocked(Rules())[INDEX["i7"]]
    assert counted_builds.builds == 2


def test_a_filters_mask_is_kept_per_masks_and_a_change_gets_fresh_ones(engine):
    """Equal filters reuse one read-only mask (building it was most of a filtered request's cost); the
    masks a change makes build their own, so a kept mask never outlives the catalogue it was built on."""
    described_catalogue()
    masks = CatalogueMasks.build(INDEX, "m1", service.catalogue_version())
    first = masks.rules_mask(Rules.of(["c0"]))
    assert masks.rules_mask(Rules.of(["c0"])) is first and not first.flags.writeable
    assert masks.rules_mask(Rules.of(["c1"])) is not first
    with pytest.raises(ValueError):
        first[0] = True
    i2_was_removed = bool(first[INDEX["i2"]])
    service.update("i2", {"categories": [] if not i2_was_removed else ["c0"], "labels": []})
    changed = CatalogueWatch._caught_up(masks, INDEX, service.catalogue_version())
    assert bool(changed.rules_mask(Rules.of(["c0"]))[INDEX["i2"]]) != i2_was_removed
    assert changed.blocked(Rules.of(["c0"])).tolist() == (
        CatalogueMasks.build(INDEX, "m1", service.catalogue_version()).blocked(Rules.of(["c0"])).tolist()
    )
