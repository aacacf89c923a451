"""The served model: which model this process serves, kept in step with the database's active pointer.

The pointer lives in the database so every worker and host agrees. Each process polls it cheaply
(one primary-key read) from a background thread, loads a new version outside the request path, then
swaps one reference. Requests read `served_model.active` once, so they see the old model or the new
one, never a mix.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import peewee
from flask import Flask

from airec import leases, scope
from airec.db import atomic_write, database
from airec.modelstore import CorruptModel, ModelStore, StoreKind, UnsafeName, make_store
from airec.modelstore.names import NAME_PATTERN
from airec.serving.active import ActiveModel
from airec.serving.variants import RunningExperiment, load_running
from airec.tables import ModelVersion, State, utcnow

log = logging.getLogger(__name__)


class ServedModel:
    def __init__(self) -> None:
        self.active: ActiveModel | None = None
        self.experiment: RunningExperiment | None = None  # its variants' models, held while it runs
        self.store: ModelStore = make_store(StoreKind.FILES, "./models_store")
        self._refused: dict[str, tuple] = {}  # version -> fingerprint of its folder when refused
        self._load_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def models_dir(self) -> Path:
        return self.store.models_dir

    def configure(self, models_dir: str | Path, model_store: StoreKind | str = StoreKind.FILES) -> None:
        self.stop_polling()
        self.active = None
        self.experiment = None
        self._refused = {}
        self.store = make_store(model_store, models_dir)
        self.models_dir.mkdir(parents=True, exist_ok=True)
        self.store.tidy()

    def swap(self, model: ActiveModel | None) -> None:
        """Replace the served model in one reference assignment (callers hold the load lock)."""
        self.active = model

    def follow(self, model: ActiveModel) -> bool:
        """Serve `model` if it is still what the database points at, under the lock a poll holds while
        it reads the pointer and loads: a poll that read an older pointer cannot put its model back
        after this one, nor this one land after a newer activation."""
        with self._load_lock:
            if leases.get_active_version() != model.version:
                return False
            self.swap(model)
            return True

    def load(self, version: str) -> ActiveModel:
        """Read and verify a version (fetched into this host's folder first when the store keeps a copy
        the folder lacks); raises CorruptModel. A local copy that fails its checksums is fetched again
        when the store keeps another."""
        try:
            return ActiveModel.from_folder(self.store.open(version))
        except UnsafeName:
            raise
        except CorruptModel as exc:
            if not self.store.holds(version):
                raise
            log.warning(
                "local copy of model %s refused (%s); fetching it again",
                version,
                exc,
                extra={"version": version},
            )
        return ActiveModel.from_folder(self.store.fetch(version))

    def available(self, version: str) -> bool:
        """Whether this host has the version's folder or can fetch it from the store."""
        return self.store.folder(version).is_dir() or self.store.holds(version)

    def trim_cache(self) -> None:
        """Drop local copies of versions archived on any host (the database store keeps such copies)."""
        self.store.trim({self.active.version} if self.active else set())

    def _fingerprint(self, version: str) -> tuple:
        """Names, sizes and mtimes of the folder's files: changes when an operator repairs it."""
        if NAME_PATTERN.fullmatch(version) is None:
            return ()
        folder = self.store.folder(version)
        if not folder.is_dir():
            return ()
        return tuple(
            sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file())
        )

    def is_refused(self, version: str) -> bool:
        """Refused before, and its files have not changed since (a repaired folder is tried again)."""
        return version in self._refused and self._refused[version] == self._fingerprint(version)

    def refuse(self, version: str, reason: str) -> None:
        """Log and remember a version that cannot be served, and mark it failed for operators."""
        if not self.is_refused(version):
            log.error("refusing model %s: %s", version, reason, extra={"version": version})
            atomic_write(
                lambda: (
                    ModelVersion.update(status="failed", error=reason)
                    .where(ModelVersion.version == version)
                    .execute()
                )
            )
        self._refused[version] = self._fingerprint(version)

    def sync(self) -> str | None:
        """Serve the version the database points at; returns the version served afterwards."""
        self.store.tidy()
        with self._load_lock:
            wanted = leases.get_active_version()
            current = self.active.version if self.active else None
            if wanted is None:
                if current is None:
                    self._adopt_newest()
                return self.active.version if self.active else None
            if wanted == current or self.is_refused(wanted):
                if self.active is None:
                    self._adopt_newest(set_pointer=False)
                if self.active is not None and wanted != self.active.version:  # pointed at a refused one
                    self._point_back(wanted, self.active.version)
                return self.active.version if self.active else None
            try:
                self.swap(self.load(wanted))
                log.info("now serving model %s", wanted, extra={"version": wanted})
                self.trim_cache()
            except CorruptModel as exc:
                self.refuse(wanted, str(exc))
                if self.active is None:
                    self._adopt_newest(set_pointer=False)
                if self.active is not None:
                    self._point_back(wanted, self.active.version)
            return self.active.version if self.active else None

    def sync_experiment(self) -> None:
        """Hold the running experiment's variant models (loaded outside the request path), or none.
        Each process logs when what it serves changes: until every worker has, some requests are
        still answered outside the experiment (variant null)."""
        try:
            held, self.experiment = self.experiment, load_running(self.load, self.active, self.experiment)
        except CorruptModel as exc:
            log.error("cannot serve the running experiment: %s", exc)
            return
        if self.experiment is not held:
            if self.experiment is not None:
                versions = ", ".join(f"{name}={version}" for name, version, _ in self.experiment.variants)
                log.info("worker %d serves experiment %s (%s)", os.getpid(), self.experiment.name, versions)
            elif held is not None:
                log.info("worker %d no longer serves experiment %s", os.getpid(), held.name)

    def _point_back(self, refused: str, good: str) -> None:
        """Move the pointer off a refused version, onto the one still served, so that every worker
        and the version API agree on what is active (only if nobody moved it meanwhile)."""
        moved = atomic_write(
            lambda: (
                State.update(value=good, updated_at=utcnow())
                .where((State.key == leases.ACTIVE_MODEL_KEY) & (State.value == refused))
                .execute()
            )
        )
        if moved:
            log.error("active model pointer moved back from %s to %s", refused, good, extra={"version": good})

    def _adopt_newest(self, set_pointer: bool = True) -> None:
        """No usable pointer: serve the newest complete, verified folder on disk (or in the database)."""
        for version in reversed(self.store.versions()):
            if self.is_refused(version):
                continue
            try:
                model = self.load(version)
            except CorruptModel as exc:
                self.refuse(version, str(exc))
                continue
            register_version(model.version, model.manifest)
            if set_pointer:
                leases.set_active_version(model.version)
            self.swap(model)
            log.info("serving newest complete model %s", version, extra={"version": version})
            return

    def start_polling(self, interval: float) -> None:
        self._stop = threading.Event()
        stop = self._stop

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    with database.connection_context():
                        self.sync()
                        self.sync_experiment()
                except (peewee.OperationalError, peewee.InterfaceError) as exc:
                    log.warning(
                        "model pointer poll: database unavailable (%s); still serving %s",
                        exc,
                        self.active.version if self.active else "no model",
                    )
                except Exception:  # keep polling whatever happens; a dead poller would freeze the version
                    log.exception("model pointer poll failed")

        self._thread = scope.thread(loop, name="airec-model-poll")
        self._thread.start()

    def stop_polling(self) -> None:
        self._stop.set()


class CurrentServedModel:
    """`served_model`: the `ServedModel` of the app whose request or thread is running (airec.scope), else
    the one configured last (the CLI, scripts). Two apps in one process each keep their own model."""

    __slots__ = ("_fallback",)

    def __init__(self) -> None:
        object.__setattr__(self, "_fallback", ServedModel())

    def target(self) -> ServedModel:
        bound = scope.current()
        if bound is not None and bound.served is not None:
            return bound.served
        return self._fallback

    def bind_fallback(self, served: ServedModel) -> None:
        object.__setattr__(self, "_fallback", served)

    def __getattr__(self, attr: str):
        return getattr(self.target(), attr)

    def __setattr__(self, attr: str, value) -> None:
        setattr(self.target(), attr, value)


served_model = CurrentServedModel()


def register_version(version: str, manifest: dict, status: str = "ready", error: str | None = None) -> None:
    """Mirror a manifest into the model_versions table (idempotent)."""
    atomic_write(
        lambda: (
            ModelVersion.insert(
                version=version,
                algorithm=manifest.get("algorithm", "unknown"),
                status=status,
                error=error,
                created_at=utcnow(),
                manifest={k: v for k, v in manifest.items() if k != "files"},
            )
            .on_conflict_ignore()
            .execute()
        )
    )


def init_served_model(app: Flask, app_scope: scope.AppScope) -> ServedModel:
    """This app's own served model: configured, synced with the pointer (polling starts later, with
    the app's other threads, after any fork)."""
    settings = app.config["AIREC"]
    served = ServedModel()
    served.configure(settings.models_dir, settings.model_store)
    app_scope.served = served
    served_model.bind_fallback(served)
    try:
        with database.connection_context():
            served.sync()
            served.sync_experiment()
    except (peewee.OperationalError, peewee.InterfaceError) as exc:  # start anyway; the poller catches up
        log.error("database unreachable at start-up, no model loaded yet: %s", exc)
    return served
