"""The one place that turns AIREC_MODEL_STORE into a store: callers never ask which kind they hold."""

from __future__ import annotations

from pathlib import Path

from airec.modelstore.base import ModelStore, StoreKind


def make_store(kind: StoreKind | str, models_dir: Path | str) -> ModelStore:
    """The store AIREC_MODEL_STORE names, over this host's AIREC_MODELS_DIR."""
    if StoreKind(kind) is StoreKind.DATABASE:
        from airec.modelstore.database import DatabaseStore  # needs the tables; the files store does not

        return DatabaseStore(models_dir)
    from airec.modelstore.files import FilesStore

    return FilesStore(models_dir)
