"""One Settings class, read from AIREC_* environment variables, with working defaults."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from airec.modelstore.base import StoreKind


class ActivationMode(StrEnum):
    """AIREC_ACTIVATE: when a newly trained model goes live (training's publish step applies it)."""

    IF_BETTER = "if-better"  # its held-out metric is not worse than the active model's
    ALWAYS = "always"


class TrainerMode(StrEnum):
    """AIREC_TRAINER: where training runs execute."""

    THREAD = "thread"  # in the web process that asked
    WORKER = "worker"  # web processes only queue runs; `airec worker` processes claim and execute them


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env(name: str, default: Any, kind: str) -> Any:
    """Read AIREC_<NAME> and coerce it to the field's declared type."""
    raw = os.environ.get(f"AIREC_{name}")
    if raw is None:
        return default
    if raw.strip() == "" and "None" in kind:  # kind is the annotation text, e.g. "int | None"
        return None
    if "bool" in kind:
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError(f"AIREC_{name}={raw!r} is not a boolean: use true/false, yes/no, on/off or 1/0")
        return word in _TRUE
    try:
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"AIREC_{name}={raw!r} is not a valid {kind}") from exc
    return raw


def _member(kind: type[StrEnum], value: Any, message: str) -> Any:
    """The enum member a setting's text names; ValueError(message) for any other text."""
    try:
        return kind(value)
    except ValueError:
        raise ValueError(message) from None


def event_type_list(text: str, setting: str) -> list[str]:
    """'view, cart' -> ['view', 'cart']; a name over 64 characters is a ValueError naming the setting."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    long = [name for name in names if len(name) > 64]
    if long:
        raise ValueError(f"{setting}: type {long[0][:20]!r}... is longer than 64 characters")
    return names


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(text: str) -> int | None:
    """'30m' -> 1800 seconds; 'off', '0' or '' -> None (disabled)."""
    if text is None or text.strip().lower() in {"", "off", "0", "never", "none"}:
        return None
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 30m, 6h, 1d or off")
    value, unit = int(match.group(1)), match.group(2)
    return value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit] or None  # '0m' is off, like '0'


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'12G', '512MB', '2GiB', '1000000' -> bytes (K/M/G/T are powers of 1024)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"bad size {text!r}: use e.g. 512M, 12G or a number of bytes")
    value, unit = float(match.group(1)), match.group(2).lower()
    return int(value * 1024 ** "_kmgt".index(unit or "_"))


def physical_memory() -> int:
    """Bytes of RAM on this machine (Linux and macOS sysconf)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def rate_limits(text: str | None) -> list | None:
    """'200/second;10000/hour' -> the limits' parsed items; unset, '' or 'off' -> None (no limit)."""
    if text is None or text.strip().lower() in {"", "off", "none"}:
        return None
    from limits import parse_many

    try:
        return parse_many(text)
    except ValueError as exc:
        raise ValueError(
            f"AIREC_RATE_LIMIT={text!r} is not a rate: use e.g. 200/second, 1000/minute, or several "
            "separated by ; (200/second;10000/hour)"
        ) from exc


def rate_limit_storage_uri(text: str) -> str:
    """'memory' -> 'memory://'; a URI such as redis://host:6379/0 is kept if its storage is known."""
    if text.strip().lower() == "memory":
        return "memory://"
    from limits.storage import SCHEMES

    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in SCHEMES or scheme.startswith("async+"):
        raise ValueError(
            f"AIREC_RATE_LIMIT_STORAGE={text!r}: use memory, or a shared storage's URI such as "
            "redis://host:6379/0 (or rediss://, redis+sentinel://, redis+cluster://)"
        )
    return text


#: Share of the machine's RAM one training run may plan to use when AIREC_TRAIN_MAX_MEMORY is unset:
#: the rest stays for the web workers (which load the model too) and the database.
DEFAULT_TRAIN_MEMORY_SHARE = 0.5


@dataclass
class Settings:
    """Everything configurable. Field names map to AIREC_<UPPER_NAME> environment variables."""

    database_url: str = "sqlite:///airec.db"
    db_pool_size: int = 10  # connections per process, reused across requests and polls (0: no pool)
    db_pool_stale_seconds: float = 300.0  # a pooled connection older than this is closed, not reused
    db_pool_wait_seconds: float = 10.0  # a request waits this long for a free connection, then 503
    models_dir: str = "./models_store"
    train_every: str = "off"
    scheduler: bool = True
    log_level: str = "INFO"
    log_json: bool = True

    # Training defaults (a POST /api/v1/training body can override per run). Unset (None) means the
    # algorithm's own tuned default.
    algorithm: str = "autoencoder"
    train_epochs: int | None = None
    train_patience: int | None = None
    train_hidden: int | None = None
    train_dropout: float | None = None
    train_lr: float | None = None
    train_batch_size: int | None = None
    train_holdout_fraction: float = 0.15  # the benchmark's (airec.recsys.evaluation.HOLDOUT_FRACTION)
    train_min_item_support: int = 1  # drop items seen in fewer units before training (1 keeps all)
    train_max_items: int | None = None  # keep at most this many most frequent items (unset: all)
    train_threads: int = 1
    train_seed: int = 42
    train_warm_start: bool = False
    train_refit: bool = True  # choose on validation, then fit the choice again on every unit
    train_max_memory: str | None = None  # e.g. 12G; unset: half the machine's RAM
    train_lease_seconds: float = 120.0  # a run whose process stopped renewing is failed after this
    #: A whole fit's wall-clock limit (e.g. 6h); past it the fit is killed and its run failed. off: none.
    train_timeout: str = "off"
    #: A fit that reports nothing (no epoch, no heartbeat while it uses CPU) this long is killed as hung.
    train_stall_seconds: float = 600.0
    activate: ActivationMode = ActivationMode.IF_BETTER  # a new model goes live if its metric is not worse
    train_nice: int = 10
    ease_max_items: int = 20000
    keep_versions: int = 5
    model_poll_seconds: float = 2.0
    #: Where training runs: in the web process that asked (the default) or in `airec worker` processes.
    trainer: TrainerMode = TrainerMode.THREAD
    worker_poll_seconds: float = 1.0  # how often an idle `airec worker` looks for a queued run
    #: Where model folders live: AIREC_MODELS_DIR only, or the database too (each host then keeps a
    #: verified copy in its own AIREC_MODELS_DIR).
    model_store: StoreKind = StoreKind.FILES

    # Limits on what clients may send.
    max_batch_records: int = 10000
    max_items_per_record: int = 1000
    max_name_length: int = 256
    max_k: int = 1000
    #: Input items one recommendation is scored from: a stored history's most recent ones; a longer
    #: basket is refused (422).
    max_history: int = 500
    max_body_bytes: int = 16 * 1024 * 1024

    # Rate limits per API key (per client address without one): unset is off.
    rate_limit: str | None = None  # e.g. 200/second, or several: 200/second;10000/hour
    rate_limit_storage: str = "memory"  # memory (per process) or redis://host:6379/0 (shared)
    rate_limit_prefix: str = "airec"  # keys in a shared storage start with this

    # Security.
    auth: bool = True
    #: A verified key is trusted this long before it is looked up again: a revoked key is refused by
    #: every worker within this many seconds (at once by the one that revoked it). 0: every request.
    key_cache_seconds: float = 5.0
    #: stats and items are answered from each worker's memory this long
    #: (a write through the same worker drops them at once). 0: every request reads the database.
    read_cache_seconds: float = 1.0
    public_docs: bool = True
    public_readyz: bool = True
    public_metrics: bool = True
    #: Signs the console's session cookies; unset: generated once and kept in the models dir (airec.console).
    secret_key: str | None = field(default=None, repr=False)
    #: A console sign-in ends this many hours after it began, however active it is (signing out, or
    #: revoking its key, ends it sooner).
    console_session_hours: float = 12.0
    #: Reverse proxies in front of the service: the client's address and scheme are read from that many
    #: X-Forwarded-For / X-Forwarded-Proto hops (werkzeug's ProxyFix). 0: those headers are ignored.
    trusted_proxies: int = 0

    # Data rights (airec/privacy, airec/audit).
    #: Interactions older than this many days (by their record's timestamp, or when it was stored where it
    #: has none) are deleted hourly. Unset: kept for ever.
    retention_days: int | None = None
    #: Audit log rows are kept this many days.
    audit_days: int = 400
    #: After a user or item deletion (or a retention run that deleted something), queue a training run so
    #: the served model stops holding what it learned from the deleted data.
    retrain_after_delete: bool = True
    #: At most one such run per this many minutes: further deletions within it wait and share the next.
    retrain_after_delete_minutes: float = 60.0

    # Feedback (airec.feedback): impressions, typed events, takes.
    impressions: bool = True  # record each answer shown (off: none are recorded)
    impression_days: int = 30  # impressions older than this are deleted, in small batches
    attribution_hours: float = 24.0  # an event without an id takes an item shown to its user this recently
    event_types: str | None = None  # comma list of accepted types; unset: any type
    event_weights: str | None = None  # e.g. view:1,cart:3,purchase:5; unset: every type weighs 1
    negative_types: str | None = None  # e.g. dislike,return: remove the item from the user's positives

    @classmethod
    def from_env(cls, overrides: Mapping[str, Any] | None = None) -> Settings:
        values = {f.name: _env(f.name.upper(), f.default, str(f.type)) for f in fields(cls)}
        settings = cls(**values)
        for key, value in (overrides or {}).items():
            if not hasattr(settings, key):
                raise KeyError(f"unknown setting {key!r}")
            setattr(settings, key, value)
        settings.validate()
        return settings

    def validate(self) -> None:
        parse_duration(self.train_every)
        if self.db_pool_size < 0:
            raise ValueError("AIREC_DB_POOL_SIZE must be 0 (no pool) or more")
        if self.db_pool_stale_seconds <= 0 or self.db_pool_wait_seconds <= 0:
            raise ValueError("AIREC_DB_POOL_STALE_SECONDS and AIREC_DB_POOL_WAIT_SECONDS must be positive")
        if not 0 < self.train_holdout_fraction < 0.45:
            raise ValueError("AIREC_TRAIN_HOLDOUT_FRACTION must be between 0 and 0.45")
        if self.train_max_memory is not None:
            parse_size(self.train_max_memory)
        if self.train_lease_seconds < 2:
            raise ValueError("AIREC_TRAIN_LEASE_SECONDS must be at least 2")
        try:
            parse_duration(self.train_timeout)
        except ValueError as exc:
            raise ValueError(f"AIREC_TRAIN_TIMEOUT: {exc}") from None
        if not self.train_stall_seconds > 0:
            raise ValueError("AIREC_TRAIN_STALL_SECONDS must be positive (seconds without progress)")
        self.activate = _member(ActivationMode, self.activate, "AIREC_ACTIVATE must be if-better or always")
        self.trainer = _member(
            TrainerMode,
            self.trainer,
            "AIREC_TRAINER must be thread (train in the web process) or worker (airec worker)",
        )
        self.model_store = _member(StoreKind, self.model_store, "AIREC_MODEL_STORE must be files or database")
        if self.worker_poll_seconds <= 0:
            raise ValueError("AIREC_WORKER_POLL_SECONDS must be positive")
        if self.train_min_item_support < 1:
            raise ValueError("AIREC_TRAIN_MIN_ITEM_SUPPORT must be at least 1")
        if self.secret_key is not None and len(self.secret_key) < 32:
            raise ValueError("AIREC_SECRET_KEY must be at least 32 characters (or unset to generate one)")
        if self.rate_limit is not None:
            rate_limits(self.rate_limit)
        rate_limit_storage_uri(self.rate_limit_storage)
        if self.max_history < 1:
            raise ValueError("AIREC_MAX_HISTORY must be at least 1")
        if not 0 <= self.read_cache_seconds <= 60:
            raise ValueError("AIREC_READ_CACHE_SECONDS must be between 0 and 60")
        if not 0 <= self.key_cache_seconds <= 60:
            raise ValueError("AIREC_KEY_CACHE_SECONDS must be between 0 and 60")
        if not 0 < self.console_session_hours <= 24 * 30:
            raise ValueError("AIREC_CONSOLE_SESSION_HOURS must be more than 0 and at most 720 (30 days)")
        if not 0 <= self.trusted_proxies <= 5:
            raise ValueError(
                "AIREC_TRUSTED_PROXIES must be between 0 (clients connect directly) and 5: the number of "
                "reverse proxies in front of the service"
            )
        self._validate_feedback()
        if self.train_max_items is not None and self.train_max_items < 2:
            raise ValueError("AIREC_TRAIN_MAX_ITEMS must be at least 2 (or unset for all items)")

        self._validate_privacy()

    def _validate_privacy(self) -> None:
        if self.retention_days is not None and self.retention_days < 1:
            raise ValueError(
                "AIREC_RETENTION_DAYS must be at least 1 (or unset to keep interactions for ever)"
            )
        if self.audit_days < 1:
            raise ValueError("AIREC_AUDIT_DAYS must be at least 1")
        if not 0 <= self.retrain_after_delete_minutes <= 7 * 24 * 60:
            raise ValueError(
                "AIREC_RETRAIN_AFTER_DELETE_MINUTES must be between 0 and 10080 (a week): the window in "
                "which deletions share one retraining run"
            )

    def _validate_feedback(self) -> None:
        if not 1 <= self.impression_days <= 3650:
            raise ValueError("AIREC_IMPRESSION_DAYS must be between 1 and 3650")
        if not 0 < self.attribution_hours <= 24 * 30:
            raise ValueError("AIREC_ATTRIBUTION_HOURS must be more than 0 and at most 720 (30 days)")
        known = self.event_type_set
        for setting, named in (
            ("EVENT_WEIGHTS", self.event_weight_map),
            ("NEGATIVE_TYPES", self.negative_type_set),
        ):
            stray = sorted(set(named) - known) if known is not None else []
            if stray:
                raise ValueError(
                    f"AIREC_{setting} names {stray[0]!r}, which AIREC_EVENT_TYPES does not accept"
                )

    @property
    def event_type_set(self) -> frozenset[str] | None:
        """AIREC_EVENT_TYPES as a set (the default type `interaction` always included), None: any type."""
        if self.event_types is None or not self.event_types.strip():
            return None
        return frozenset({"interaction", *event_type_list(self.event_types, "AIREC_EVENT_TYPES")})

    @property
    def negative_type_set(self) -> frozenset[str]:
        if self.negative_types is None:
            return frozenset()
        return frozenset(event_type_list(self.negative_types, "AIREC_NEGATIVE_TYPES"))

    @property
    def event_weight_map(self) -> dict[str, float]:
        """AIREC_EVENT_WEIGHTS as {type: weight}; empty when unset (every type weighs 1)."""
        if self.event_weights is None or not self.event_weights.strip():
            return {}
        weights = {}
        for entry in self.event_weights.split(","):
            name, _, number = entry.strip().partition(":")
            try:
                weight = float(number)
            except ValueError:
                weight = float("nan")
            if not name or len(name) > 64 or not math.isfinite(weight) or weight <= 0:
                raise ValueError(
                    f"AIREC_EVENT_WEIGHTS={self.event_weights!r}: use type:weight pairs separated by commas, "
                    "each weight a positive number (e.g. view:1,cart:3,purchase:5)"
                )
            weights[name] = weight
        return weights

    def training_overrides(self) -> dict[str, Any]:
        """Hyper-parameters set through the environment (only those explicitly set)."""
        names = ("epochs", "patience", "hidden", "dropout", "lr", "batch_size")
        values = {name: getattr(self, f"train_{name}") for name in names}
        values["threads"] = self.train_threads
        values["seed"] = self.train_seed
        return {k: v for k, v in values.items() if v is not None}

    @property
    def pool(self) -> dict[str, float]:
        """The connection pool's settings, as airec.db.make_database takes them."""
        return {
            "pool_size": self.db_pool_size,
            "pool_stale_seconds": self.db_pool_stale_seconds,
            "pool_wait_seconds": self.db_pool_wait_seconds,
        }

    @property
    def train_memory_budget(self) -> int:
        """Bytes a training run may plan to use at its peak."""
        if self.train_max_memory is not None:
            return parse_size(self.train_max_memory)
        return int(physical_memory() * DEFAULT_TRAIN_MEMORY_SHARE)

    @property
    def train_every_seconds(self) -> int | None:
        return parse_duration(self.train_every)

    @property
    def train_timeout_seconds(self) -> int | None:
        return parse_duration(self.train_timeout)
