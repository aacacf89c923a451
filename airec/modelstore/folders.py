"""Versioned model folders on disk, written atomically and verified by checksum on load.

A folder is complete only when manifest.json exists in it; the manifest is written last, inside a
temporary folder that is renamed into place in one step, so a crash never leaves a half-written
model that looks complete. The manifest holds a SHA-256 of every other file, so a truncated or
corrupted folder is refused at load, and names its version, which must be the folder's name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airec.modelstore.base import CorruptModel
from airec.modelstore.names import NAME_PATTERN, child, safe_relative
from airec.recsys.base import Recommender

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
ITEMS = "items.json"
POPULARITY = "popularity.npy"
TMP_PREFIX = ".tmp-"


def new_version(algorithm: str) -> str:
    """Sortable, unique: 20261127T101500Z-autoencoder-3fa2."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{algorithm}-{secrets.token_hex(2)}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_model(
    models_dir: Path | str,
    *,
    version: str,
    model: Recommender,
    items: list[str],
    popularity: np.ndarray,
    manifest: dict[str, Any],
) -> Path:
    """Write a complete model folder atomically; returns its final path."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    final = child(models_dir, version)
    tmp = models_dir / f"{TMP_PREFIX}{version}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    model.save(tmp)
    (tmp / ITEMS).write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    np.save(tmp / POPULARITY, np.asarray(popularity, dtype=np.float32))
    files = sorted(p for p in tmp.rglob("*") if p.is_file())
    checksums = {str(p.relative_to(tmp)): sha256_of(p) for p in files}
    for path in files:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    body = dict(manifest, version=version, files=checksums)
    manifest_tmp = tmp / (MANIFEST + ".part")
    with open(manifest_tmp, "w", encoding="utf-8") as handle:
        json.dump(body, handle, indent=2, ensure_ascii=False, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(manifest_tmp, tmp / MANIFEST)
    _fsync_dir(tmp)
    os.replace(tmp, final)
    _fsync_dir(models_dir)
    return final


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's manifest; raises CorruptModel when it is missing, unreadable, or names another
    version than the folder (a folder copied or renamed by hand would otherwise load as that other
    version, so the pointer naming the folder would never be reached)."""
    path = folder / MANIFEST
    if not path.is_file():
        raise CorruptModel(f"{folder.name}: no manifest.json (incomplete write?)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptModel(f"{folder.name}: manifest.json is not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or "files" not in manifest or "version" not in manifest:
        raise CorruptModel(f"{folder.name}: manifest.json lacks version or checksums")
    if manifest["version"] != folder.name:
        raise CorruptModel(
            f"{folder.name}: the folder's name differs from the version in its manifest.json "
            f"({manifest['version']!r}); a model folder must be named after its version: rename it "
            "back, or remove it"
        )
    return manifest


def verify(folder: Path, manifest: dict | None = None) -> dict[str, Any]:
    """Check every file against the manifest's checksum; returns the manifest."""
    manifest = manifest or read_manifest(folder)
    for name, expected in manifest["files"].items():
        path = folder / safe_relative(name)
        if not path.is_file():
            raise CorruptModel(f"{folder.name}: missing file {name}")
        if sha256_of(path) != expected:
            raise CorruptModel(f"{folder.name}: checksum mismatch for {name}")
    return manifest


def complete_versions(models_dir: Path | str) -> list[str]:
    """Folders with a manifest, oldest first (names sort by creation time); hidden folders (the
    temporaries) and names no version can have are not versions."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(
        p.name
        for p in models_dir.iterdir()
        if NAME_PATTERN.fullmatch(p.name) and p.is_dir() and (p / MANIFEST).is_file()
    )


def remove_version(models_dir: Path | str, version: str) -> None:
    folder = child(models_dir, version)
    if folder.is_dir():
        shutil.rmtree(folder)


def clean_temporaries(models_dir: Path | str) -> int:
    """Delete folders left by writes that were interrupted."""
    models_dir = Path(models_dir)
    removed = 0
    if models_dir.is_dir():
        for path in models_dir.glob(f"{TMP_PREFIX}*"):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


@dataclass(frozen=True)
class ModelFiles:
    """What the serving side needs from a folder, read and verified."""

    version: str
    manifest: dict
    items: list
    popularity: np.ndarray
    model: Recommender


def load_folder(folder: Path) -> ModelFiles:
    """Verify and read a model folder (raises CorruptModel)."""
    from airec.recsys.algorithms import load_model

    manifest = verify(folder)
    try:
        items = json.loads((folder / ITEMS).read_text(encoding="utf-8"))
        popularity = np.load(folder / POPULARITY)
        model = load_model(folder)
    except Exception as exc:  # a folder that passed checksums but cannot be read is still corrupt
        raise CorruptModel(f"{folder.name}: cannot be loaded ({exc})") from exc
    if len(items) != len(popularity):
        raise CorruptModel(f"{folder.name}: {len(items)} items but {len(popularity)} popularity entries")
    return ModelFiles(manifest["version"], manifest, items, popularity, model)
