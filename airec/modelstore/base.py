"""What every model store offers, whichever backend keeps the folders (AIREC_MODEL_STORE).

Callers hold a `ModelStore` chosen once at start (airec.modelstore.make_store) and never ask which
kind it is: the files store keeps each version only as its folder in AIREC_MODELS_DIR; the database
store keeps the files in the database too, and each host's folder is a verified local cache.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Protocol


class StoreKind(StrEnum):
    """AIREC_MODEL_STORE."""

    FILES = "files"
    DATABASE = "database"


class CorruptModel(Exception):
    """A model folder that is incomplete, misnamed or whose files do not match their checksums."""


class ModelStore(Protocol):
    """Versioned model folders: a version's local folder, and the copies kept beyond this host."""

    kind: StoreKind
    models_dir: Path

    def folder(self, version: str) -> Path:
        """This host's folder of a version (it may not exist); raises UnsafeName for a bad name."""

    def save(self, version: str, folder: Path) -> None:
        """Keep a published folder in the store; call inside the transaction that registers it."""

    def open(self, version: str) -> Path:
        """The version's local folder, fetched into the local cache first when this host lacks it."""

    def fetch(self, version: str) -> Path:
        """Copy the stored version into the local cache (replacing a damaged copy); raises
        CorruptModel when the store holds no copy beyond the local folder, or a damaged one."""

    def holds(self, version: str) -> bool:
        """Whether the store keeps a copy beyond this host's folder (one `fetch` can read)."""

    def versions(self) -> list[str]:
        """Every complete version held here or in the store, oldest first."""

    def delete(self, version: str) -> None:
        """Remove the local folder and the stored copy (inside the caller's transaction, if any)."""

    def tidy(self) -> list[str]:
        """Remove what interrupted work left behind (run at start and on each poll); returns names."""

    def trim(self, keep: set[str]) -> list[str]:
        """Drop local copies of versions archived anywhere, except `keep`; returns the versions."""
