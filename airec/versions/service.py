"""Model versions as operators see them, and the two actions on them: activate and archive.

The active pointer lives in the database (airec.leases), so "active" is derived from it and every
worker and host agrees. Activation verifies the folder (checksums, loadable) before moving the
pointer; the other workers follow within one poll interval (served_model.start_polling).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

from airec import leases
from airec.db import atomic_write, database, fetch
from airec.modelstore import CorruptModel, UnsafeName, folders, safe_name
from airec.privacy.ledger import mark_deleted_data
from airec.recsys.algorithms import params_with_old_names
from airec.serving.served import register_version, served_model
from airec.tables import ModelVersion

log = logging.getLogger(__name__)

STATUSES = ("active", "ready", "failed", "archived")


#: Version names this process has seen registered, per database. The table never forgets a version
#: (archiving only marks it), so a folder whose name is here needs no query to know it is registered.
_registered: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
_registered_lock = threading.Lock()


class VersionNotFound(LookupError):
    """No such model version, neither in the database nor on disk."""


class VersionConflict(Exception):
    """The action does not fit the version's state (archived, or active when archiving)."""


class VersionCorrupt(Exception):
    """The folder fails verification (checksums, missing files, unreadable)."""


def _sync_disk() -> None:
    """Register complete folders the table does not know yet (e.g. copied in by hand). Every listing
    calls this, so it lists the folder's names and looks closer (manifests, then the database) only
    when one of them is not yet seen registered."""
    with _registered_lock:
        seen = _registered.setdefault(database.obj, set())
    try:
        names = os.listdir(served_model.models_dir)
    except OSError:  # no models folder yet
        return
    if seen.issuperset(name for name in names if not name.startswith(".")):  # temporaries are hidden
        return
    on_disk = folders.complete_versions(served_model.models_dir)
    if seen.issuperset(on_disk):
        return
    known = {v for (v,) in ModelVersion.select(ModelVersion.version).tuples()}
    for version in on_disk:
        if version in known:
            continue
        try:
            register_version(version, folders.read_manifest(served_model.store.folder(version)))
        except CorruptModel as exc:  # listed as failed, with the reason: an operator sees why
            register_version(version, {}, status="failed", error=str(exc))
        known.add(version)
    seen.update(known)


def _pointers() -> tuple[str | None, str | None]:
    """The active and pinned versions, read together (one query)."""
    values = leases.get_values(leases.ACTIVE_MODEL_KEY, leases.PINNED_MODEL_KEY)
    return values[leases.ACTIVE_MODEL_KEY], values[leases.PINNED_MODEL_KEY]


def describe(row: ModelVersion, active: str | None, pinned: str | None = None) -> dict[str, Any]:
    """One version for the API: status 'active' comes from the pointer, never from the row."""
    manifest = row.manifest or {}
    try:
        on_disk = (served_model.store.folder(row.version) / folders.MANIFEST).is_file()
    except UnsafeName:  # a row edited by hand: never a path
        on_disk = False
    status = "active" if row.version == active else row.status
    if status == "active" and row.status in ("archived", "failed"):  # pointed at, but nobody serves it
        status = row.status
    return {
        "version": row.version,
        "algorithm": row.algorithm,
        "status": status,
        "error": row.error if status == "failed" else None,
        "pinned": status == "active" and row.version == pinned,
        "created_at": row.created_at,
        "on_disk": on_disk,
        "run_id": manifest.get("run_id"),
        "data": manifest.get("data") or {},
        "params": params_with_old_names(row.algorithm, manifest.get("params") or {}),
        "validation": manifest.get("validation") or {},
        "evaluation": manifest.get("evaluation") or {},
        "refit": manifest.get("refit"),
        "training_seconds": manifest.get("training_seconds"),
        "training_cpu_seconds": manifest.get("training_cpu_seconds"),
    }


def list_versions(*, status: str | None = None, limit: int = 100) -> dict[str, Any]:
    """Versions newest first (names sort by creation time), with the active one named."""
    _sync_disk()
    active, pinned = _pointers()
    rows = fetch("versions newest first", lambda: ModelVersion.select().order_by(ModelVersion.version.desc()))
    out = [describe(row, active, pinned) for row in rows]
    mark_deleted_data(out)
    if status:
        out = [v for v in out if v["status"] == status]
    return {"active": active, "pinned": pinned, "versions": out[:limit]}


def _row(version: str) -> ModelVersion:
    safe_name(version)  # raises UnsafeName before the name reaches a query or a path
    row = ModelVersion.get_or_none(ModelVersion.version == version)
    if row is None:
        _sync_disk()
        row = ModelVersion.get_or_none(ModelVersion.version == version)
    if row is None:
        raise VersionNotFound(f"No model version {version!r}.")
    return row


def get_version(version: str) -> dict[str, Any]:
    described = describe(_row(version), *_pointers())
    mark_deleted_data([described])
    return described


def _set_status(version: str, status: str, error: str | None = None) -> None:
    atomic_write(
        lambda: (
            ModelVersion.update(status=status, error=error).where(ModelVersion.version == version).execute()
        )
    )


def activate(version: str) -> dict[str, Any]:
    """Verify the folder, then point every worker at it and pin it (promotion or rollback): training
    runs keep registering new versions but activate none until `unpin`.

    Raises VersionNotFound, VersionConflict (archived / files gone) or VersionCorrupt (checksums).
    """
    row = _row(version)
    if row.status == "archived" or not served_model.available(version):
        raise VersionConflict(
            f"Model {version} is archived: its files are no longer on disk, so it cannot be activated."
        )
    try:
        model = served_model.load(version)  # full checksum verification and a real load
    except CorruptModel as exc:
        log.error("refusing to activate model %s: %s", version, exc, extra={"version": version})
        _set_status(version, "failed", str(exc))
        raise VersionCorrupt(f"Model {version} failed verification: {exc}") from exc
    if row.status == "failed":
        _set_status(version, "ready")  # it verifies now (e.g. files restored): usable again
    previous = leases.get_active_version()

    def point_and_pin() -> None:
        if not served_model.store.holds(version):  # e.g. a folder copied in by hand: other hosts fetch
            served_model.store.save(version, served_model.store.folder(version))  # it from the store
        leases.set_value(leases.ACTIVE_MODEL_KEY, version)
        leases.set_value(leases.PINNED_MODEL_KEY, version)

    atomic_write(point_and_pin)
    served_model.follow(model)
    log.info("model %s activated and pinned (was %s)", version, previous, extra={"version": version})
    return {"previous": previous, "model": get_version(version)}


def unpin() -> dict[str, Any]:
    """Let training runs activate new models again (AIREC_ACTIVATE decides which)."""
    pinned = leases.get_pinned_version()
    atomic_write(lambda: leases.set_value(leases.PINNED_MODEL_KEY, None))
    if pinned:
        log.info("model %s unpinned", pinned, extra={"version": pinned})
    return {"unpinned": pinned, "active": leases.get_active_version()}


def archive(version: str) -> dict[str, Any]:
    """Delete a non-active version's files and mark it archived (idempotent)."""
    row = _row(version)
    if version == leases.get_active_version():
        raise VersionConflict(
            f"Model {version} is the active model; activate another version before archiving it."
        )
    from airec.experiments.service import running_versions

    if version in running_versions():
        raise VersionConflict(f"Model {version} serves a running experiment; stop it before archiving.")
    served_model.store.delete(version)  # the folder, and any copy the store keeps
    if row.status != "archived":
        _set_status(version, "archived")
        log.info("model %s archived", version, extra={"version": version})
    return get_version(version)
