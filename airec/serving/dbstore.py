"""Model folders kept in the database (AIREC_MODEL_STORE=database), so hosts share no disk.

A published folder's files go into `model_files` (name, SHA-256, size) and `model_file_parts` (the
bytes, in chunks of PART_BYTES, so no value nears PostgreSQL's 1 GB or SQLite's blob limit), in the
transaction that registers the version: a version is registered with its files or not at all. Each
host keeps a copy in its own AIREC_MODELS_DIR: `fetch` writes it under a temporary name, checks every
file against the stored checksum and renames it into place, as airec.serving.store writes a folder.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
from pathlib import Path

from airec.db import atomic_write
from airec.serving import store
from airec.tables import ModelFile, ModelFilePart, ModelVersion

log = logging.getLogger(__name__)

#: Bytes per stored chunk: small enough for any driver's buffers, large enough to keep rows few.
PART_BYTES = 8 << 20
#: Temporary folders of fetches in progress (store.complete_versions skips dot-names).
FETCH_PREFIX = ".fetch-"


def put_folder(folder: Path, version: str) -> int:
    """Store every file of `folder` under `version`; call inside the registering transaction.
    Returns the bytes stored. Replaces an earlier copy of the same version."""
    delete(version)
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = str(path.relative_to(folder))
        digest, size, part = hashlib.sha256(), 0, 0
        with open(path, "rb") as handle:
            while True:
                chunk = handle.read(PART_BYTES)
                if not chunk and part > 0:
                    break
                digest.update(chunk)
                size += len(chunk)
                ModelFilePart.insert(version=version, name=name, part=part, data=chunk).execute()
                part += 1
                if len(chunk) < PART_BYTES:
                    break
        ModelFile.insert(
            version=version, name=name, sha256=digest.hexdigest(), size=size, parts=part
        ).execute()
        total += size
    return total


def delete(version: str) -> None:
    """Drop a version's stored files (inside the caller's transaction, or on its own)."""
    ModelFilePart.delete().where(ModelFilePart.version == version).execute()
    ModelFile.delete().where(ModelFile.version == version).execute()


def delete_now(version: str) -> None:
    atomic_write(lambda: delete(version))


def has(version: str) -> bool:
    """True when the database holds a complete copy (its manifest is among the files)."""
    return (
        ModelFile.select().where((ModelFile.version == version) & (ModelFile.name == store.MANIFEST)).exists()
    )


def stored_versions() -> list[str]:
    """Versions with files in the database, oldest first (names sort by creation time)."""
    rows = ModelFile.select(ModelFile.version).where(ModelFile.name == store.MANIFEST).tuples()
    return sorted(version for (version,) in rows)


def stored_bytes(version: str) -> int:
    sizes = ModelFile.select(ModelFile.size).where(ModelFile.version == version).tuples()
    return sum(size for (size,) in sizes)


def fetch(models_dir: Path | str, version: str) -> Path:
    """Copy a stored version into `models_dir`, verified against its checksums; returns the folder.
    A damaged local copy is replaced. Raises store.CorruptModel when the stored copy is incomplete or
    does not match its checksums (or the database holds none)."""
    models_dir = Path(models_dir)
    files = list(ModelFile.select().where(ModelFile.version == version).order_by(ModelFile.name))
    if not any(f.name == store.MANIFEST for f in files):
        raise store.CorruptModel(f"{version}: the database holds no complete copy of this model")
    tmp = models_dir / f"{FETCH_PREFIX}{version}-{secrets.token_hex(3)}"
    tmp.mkdir(parents=True)
    try:
        for meta in files:
            _fetch_file(meta, tmp / meta.name)
        final = models_dir / version
        if final.exists():  # damaged (the caller's load failed), or another process just fetched it
            if _same_files(final, files):
                shutil.rmtree(tmp)
                return final
            shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("model %s fetched from the database into %s", version, models_dir, extra={"version": version})
    return final


def _fetch_file(meta: ModelFile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(path, "wb") as handle:
        for part in range(meta.parts):  # one chunk in memory at a time
            row = ModelFilePart.get_or_none(
                (ModelFilePart.version == meta.version)
                & (ModelFilePart.name == meta.name)
                & (ModelFilePart.part == part)
            )
            if row is None:
                raise store.CorruptModel(
                    f"{meta.version}: part {part} of {meta.name} is missing in the database"
                )
            data = bytes(row.data)
            digest.update(data)
            size += len(data)
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if size != meta.size or digest.hexdigest() != meta.sha256:
        raise store.CorruptModel(f"{meta.version}: {meta.name} in the database does not match its checksum")


def _same_files(folder: Path, files: list[ModelFile]) -> bool:
    """Whether a local folder holds exactly the stored files (a copy another process completed)."""
    try:
        return all((folder / f.name).is_file() and store._sha256(folder / f.name) == f.sha256 for f in files)
    except OSError:
        return False


def trim_cache(models_dir: Path | str, keep: set[str]) -> list[str]:
    """Remove local copies of versions archived (or pruned) anywhere: the database no longer holds them
    and their row says archived. Folders the registry does not know yet (a fit being published) stay."""
    local = set(store.complete_versions(models_dir)) - keep
    if not local:
        return []
    archived = {
        v
        for (v,) in ModelVersion.select(ModelVersion.version)
        .where(ModelVersion.version.in_(sorted(local)) & (ModelVersion.status == "archived"))
        .tuples()
    }
    for version in sorted(archived):
        store.remove_version(models_dir, version)
        log.info("local copy of archived model %s removed", version, extra={"version": version})
    return sorted(archived)
