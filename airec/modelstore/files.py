"""AIREC_MODEL_STORE=files: a version is its folder in AIREC_MODELS_DIR and nothing else."""

from __future__ import annotations

from pathlib import Path

from airec.modelstore import folders
from airec.modelstore.base import CorruptModel, StoreKind
from airec.modelstore.names import child


class FilesStore:
    """Folders on this host's disk (or a disk the hosts share); there is no other copy to fetch."""

    kind = StoreKind.FILES

    def __init__(self, models_dir: Path | str) -> None:
        self.models_dir = Path(models_dir)

    def folder(self, version: str) -> Path:
        return child(self.models_dir, version)

    def save(self, version: str, folder: Path) -> None:
        """The written folder is the stored copy."""

    def open(self, version: str) -> Path:
        return self.folder(version)

    def fetch(self, version: str) -> Path:
        self.folder(version)
        raise CorruptModel(f"{version}: no copy other than its folder in {self.models_dir}")

    def holds(self, version: str) -> bool:
        return False

    def versions(self) -> list[str]:
        return folders.complete_versions(self.models_dir)

    def delete(self, version: str) -> None:
        folders.remove_version(self.models_dir, version)

    def tidy(self) -> list[str]:
        return []

    def trim(self, keep: set[str]) -> list[str]:
        return []
