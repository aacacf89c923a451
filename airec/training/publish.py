"""Publishing a fitted model: verify its folder, keep it in the model store and register it (inside
the run's fenced transaction), or discard it when that transaction did not commit; and prune old
versions. Knows nothing of run rows, the lease or the active pointer (airec.training.activation)."""

from __future__ import annotations

from pathlib import Path

from airec import leases
from airec.config import Settings
from airec.db import atomic_write
from airec.modelstore import folders
from airec.serving.active import ActiveModel
from airec.serving.served import register_version, served_model
from airec.tables import ModelVersion


def verify(fitted: dict) -> ActiveModel:
    """Read back and verify the folder the child wrote, before anything may serve it."""
    return ActiveModel.from_folder(Path(fitted["folder"]))


def register(fitted: dict) -> None:
    """Keep the folder in the store and list the version; call inside the transaction that may also
    activate it, so that the files, the row and the pointer commit together or not at all."""
    served_model.store.save(fitted["version"], Path(fitted["folder"]))
    register_version(fitted["version"], fitted["manifest"])


def discard(settings: Settings, version: str) -> None:
    """Remove the folder of a version whose registration did not commit: no host may activate it."""
    folders.remove_version(settings.models_dir, version)


def prune_versions(settings: Settings) -> list[str]:
    """Keep the newest `keep_versions` versions (folders on disk and, with the database store, copies
    in the database); never the active one nor one a running experiment serves. Other hosts drop their
    copies of what this archives."""
    from airec.experiments.service import running_versions

    held = {leases.get_active_version(), *running_versions()}
    model_store = served_model.store
    ordered = model_store.versions()
    removed = []
    for version in ordered[: max(0, len(ordered) - settings.keep_versions)]:
        if version in held:
            continue

        def archive(v: str = version) -> None:
            model_store.delete(v)
            ModelVersion.update(status="archived").where(ModelVersion.version == v).execute()

        atomic_write(archive)
        removed.append(version)
    return removed
