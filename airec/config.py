"""One Settings class, read from AIREC_* environment variables, with working defaults."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Optional


def _env(name: str, default: Any) -> Any:
    """Read AIREC_<NAME> and coerce it to the default's type."""
    raw = os.environ.get(f"AIREC_{name}")
    if raw is None:
        return default
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    return raw


_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_duration(text: str) -> Optional[int]:
    """'30m' -> 1800 seconds; 'off', '0' or '' -> None (disabled)."""
    if text is None or text.strip().lower() in {"", "off", "0", "never", "none"}:
        return None
    match = _DURATION.match(text.lower())
    if not match:
        raise ValueError(f"bad duration {text!r}: use e.g. 90s, 30m, 6h, 1d or off")
    value, unit = int(match.group(1)), match.group(2)
    return value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


@dataclass
class Settings:
    """Everything configurable. Field names map to AIREC_<UPPER_NAME> environment variables."""

    database_url: str = "sqlite:///airec.db"
    models_dir: str = "./models_store"
    train_every: str = "off"
    scheduler: bool = True
    log_level: str = "INFO"
    log_json: bool = True

    # Training defaults (a POST /api/v1/training body can override per run).
    algorithm: str = "autoencoder"
    train_max_epochs: int = 100
    train_patience: int = 10
    train_hidden: int = 600
    train_dropout: float = 0.5
    train_lr: float = 1e-3
    train_batch_size: int = 256
    train_validation_fraction: float = 0.1
    train_threads: int = 1
    train_seed: int = 42
    train_warm_start: bool = False
    ease_max_items: int = 20000
    keep_versions: int = 5
    model_poll_seconds: float = 2.0

    # Limits on what clients may send.
    max_batch_records: int = 10000
    max_items_per_record: int = 1000
    max_name_length: int = 256
    max_k: int = 1000
    max_body_bytes: int = 16 * 1024 * 1024

    # Security.
    auth: bool = True
    public_docs: bool = True
    public_readyz: bool = True
    public_metrics: bool = True

    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, overrides: Optional[Mapping[str, Any]] = None) -> "Settings":
        values = {f.name: _env(f.name.upper(), f.default) for f in fields(cls) if f.name != "extra"}
        settings = cls(**values)
        for key, value in (overrides or {}).items():
            if not hasattr(settings, key):
                raise KeyError(f"unknown setting {key!r}")
            setattr(settings, key, value)
        settings.validate()
        return settings

    def validate(self) -> None:
        parse_duration(self.train_every)
        if not 0 < self.train_validation_fraction < 0.9:
            raise ValueError("AIREC_TRAIN_VALIDATION_FRACTION must be between 0 and 0.9")

    @property
    def train_every_seconds(self) -> Optional[int]:
        return parse_duration(self.train_every)
