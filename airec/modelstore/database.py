"""AIREC_MODEL_STORE=database: model folders kept in the database, so hosts share no disk.

A published folder's files go into `model_files` (name, SHA-256, size) and `model_file_parts` (the
bytes, in chunks of PART_BYTES, so no value nears PostgreSQL's 1 GB or SQLite's blob limit), in the
transaction that registers the version: a version is registered with its files or not at all. Each
host keeps a copy in its own AIREC_MODELS_DIR: `fetch` writes it under a temporary `.fetch-*` name,
checks every file against the stored checksum and renames it into place. Processes that fetch one
version at once each write their own temporary copy; the first rename wins and the others use the
winner's folder. Every name read from the tables is checked (airec.modelstore.names) before it
becomes a path.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
import shutil
import time
from pathlib import Path

from airec.db import atomic_write
from airec.modelstore import folders
from airec.modelstore.base import CorruptModel, StoreKind
from airec.modelstore.names import NAME_PATTERN, child, safe_name, safe_relative
from airec.tables import ModelFile, ModelFilePart, ModelVersion

log = logging.getLogger(__name__)

#: Bytes per stored chunk: small enough for any driver's buffers, large enough to keep rows few.
PART_BYTES = 8 << 20
#: Temporary folders of fetches in progress (folders.complete_versions skips dot-names).
FETCH_PREFIX = ".fetch-"
#: A `.fetch-*` folder untouched this long belongs to a fetch that died: removed at start and each poll.
STALE_FETCH_SECONDS = 3600.0


def put_folder(folder: Path, version: str) -> int:
    """Store every file of `folder` under `version`; call inside the registering transaction.
    Returns the bytes stored. Replaces an earlier copy of the same version."""
    safe_name(version)
    delete(version)
    total = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = safe_relative(path.relative_to(folder).as_posix())
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


def has(version: str) -> bool:
    """True when the database holds a complete copy (its manifest is among the files)."""
    return (
        ModelFile.select()
        .where((ModelFile.version == version) & (ModelFile.name == folders.MANIFEST))
        .exists()
    )


def stored_versions() -> list[str]:
    """Versions with files in the database, oldest first (names sort by creation time). A name that
    cannot be a folder is left out, with an error in the log."""
    rows = ModelFile.select(ModelFile.version).where(ModelFile.name == folders.MANIFEST).tuples()
    names = []
    for (version,) in rows:
        if NAME_PATTERN.fullmatch(version):
            names.append(version)
        else:
            log.error("model_files holds a version named %r, which is not a safe name: ignored", version)
    return sorted(names)


def stored_bytes(version: str) -> int:
    sizes = ModelFile.select(ModelFile.size).where(ModelFile.version == version).tuples()
    return sum(size for (size,) in sizes)


class DatabaseStore:
    """Files in the database, a verified copy per host in its AIREC_MODELS_DIR."""

    kind = StoreKind.DATABASE

    def __init__(self, models_dir: Path | str) -> None:
        self.models_dir = Path(models_dir)

    def folder(self, version: str) -> Path:
        return child(self.models_dir, version)

    def save(self, version: str, folder: Path) -> None:
        put_folder(folder, version)

    def open(self, version: str) -> Path:
        folder = self.folder(version)
        if not (folder / folders.MANIFEST).is_file() and has(version):
            return self.fetch(version)
        return folder

    def holds(self, version: str) -> bool:
        return has(version)

    def versions(self) -> list[str]:
        return sorted(set(folders.complete_versions(self.models_dir)) | set(stored_versions()))

    def delete(self, version: str) -> None:
        folders.remove_version(self.models_dir, version)
        atomic_write(lambda: delete(version))

    def fetch(self, version: str) -> Path:
        """Copy a stored version into the local cache, verified against its checksums; returns the
        folder. A damaged local copy is replaced; a complete one another process just renamed into
        place is used as it is. Raises CorruptModel when the stored copy is incomplete, misnamed or
        does not match its checksums (or the database holds none)."""
        final = self.folder(version)
        files = list(ModelFile.select().where(ModelFile.version == version).order_by(ModelFile.name))
        if not any(f.name == folders.MANIFEST for f in files):
            raise CorruptModel(f"{version}: the database holds no complete copy of this model")
        for meta in files:
            safe_relative(meta.name, f"{version}: stored file")
        tmp = self.models_dir / f"{FETCH_PREFIX}{version}-{secrets.token_hex(3)}"
        tmp.mkdir(parents=True)
        try:
            for meta in files:
                _fetch_file(meta, tmp / meta.name)
            self._move_into_place(tmp, final, files)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already when it became `final`
        return final

    def _move_into_place(self, tmp: Path, final: Path, files: list[ModelFile]) -> None:
        """Rename the verified copy to its version's name, unless an identical copy is there already.
        A rename that loses to another process's leaves ours to be discarded: theirs is used."""
        for _ in range(3):
            if final.exists():
                if _same_files(final, files):
                    return
                aside = self.models_dir / f"{FETCH_PREFIX}{final.name}-{secrets.token_hex(3)}-damaged"
                try:
                    os.replace(final, aside)  # atomic: a reader sees the damaged copy or none
                except FileNotFoundError:
                    continue  # another process moved it meanwhile
                shutil.rmtree(aside, ignore_errors=True)
            try:
                os.replace(tmp, final)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                continue  # another process renamed its copy into place first: look at it
            log.info("model %s fetched from the database into %s", final.name, self.models_dir)
            return
        raise CorruptModel(f"{final.name}: the local copy keeps changing under this fetch; try again")

    def tidy(self) -> list[str]:
        """Remove `.fetch-*` folders untouched for STALE_FETCH_SECONDS: left by fetches that died."""
        removed = []
        try:
            leftovers = [p for p in self.models_dir.iterdir() if p.name.startswith(FETCH_PREFIX)]
        except OSError:
            return removed
        deadline = time.time() - STALE_FETCH_SECONDS
        for path in leftovers:
            if _newest_mtime(path) < deadline:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path.name)
                log.info("removed %s, left by a model fetch that did not finish", path.name)
        return removed

    def trim(self, keep: set[str]) -> list[str]:
        """Remove local copies of versions archived (or pruned) anywhere: the database no longer holds
        them and their row says archived. Folders the registry does not know yet (a fit being
        published) stay."""
        local = set(folders.complete_versions(self.models_dir)) - keep
        if not local:
            return []
        archived = {
            v
            for (v,) in ModelVersion.select(ModelVersion.version)
            .where(ModelVersion.version.in_(sorted(local)) & (ModelVersion.status == "archived"))
            .tuples()
        }
        for version in sorted(archived):
            folders.remove_version(self.models_dir, version)
            log.info("local copy of archived model %s removed", version, extra={"version": version})
        return sorted(archived)


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
                raise CorruptModel(f"{meta.version}: part {part} of {meta.name} is missing in the database")
            data = bytes(row.data)
            digest.update(data)
            size += len(data)
            handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if size != meta.size or digest.hexdigest() != meta.sha256:
        raise CorruptModel(f"{meta.version}: {meta.name} in the database does not match its checksum")


def _same_files(folder: Path, files: list[ModelFile]) -> bool:
    """Whether a local folder holds exactly the stored files (a copy another process completed)."""
    try:
        return all(
            (folder / f.name).is_file() and folders.sha256_of(folder / f.name) == f.sha256 for f in files
        )
    except OSError:
        return False


def _newest_mtime(path: Path) -> float:
    """The latest change in a folder or any file in it (a fetch writing a large file keeps it fresh)."""
    try:
        return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.rglob("*"))])
    except OSError:
        return time.time()  # vanished meanwhile, or unreadable: not ours to judge now
