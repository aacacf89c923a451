"""Settings from AIREC_* environment variables: typed values, and bad values refused clearly."""

from __future__ import annotations

import os

import pytest

from airec.config import Settings, parse_duration


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """Tests start from the defaults whatever the calling shell exported."""
    for name in list(os.environ):
        if name.startswith("AIREC_"):
            monkeypatch.delenv(name)


def test_defaults_work_without_any_environment():
    settings = Settings.from_env()
    assert settings.database_url == "sqlite:///airec.db"
    assert settings.algorithm == "autoencoder"
    assert settings.train_every_seconds is None
    assert settings.train_epochs is None and settings.training_overrides() == {"threads": 1, "seed": 42}


def test_values_are_coerced_to_the_declared_types(monkeypatch):
    env = {
        "AIREC_DATABASE_URL": "postgresql://u@127.0.0.1/test",
        "AIREC_TRAIN_EVERY": "6h",
        "AIREC_SCHEDULER": "off",
        "AIREC_AUTH": "Yes",
        "AIREC_LOG_JSON": "0",
        "AIREC_TRAIN_EPOCHS": "30",
        "AIREC_TRAIN_DROPOUT": "0.25",
        "AIREC_TRAIN_HOLDOUT_FRACTION": "0.2",
        "AIREC_MODEL_POLL_SECONDS": "0.5",
        "AIREC_KEEP_VERSIONS": "3",
        "AIREC_TRAIN_HIDDEN": "",  # empty optional = unset
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert settings.database_url == "postgresql://u@127.0.0.1/test"
    assert settings.train_every_seconds == 6 * 3600
    assert settings.scheduler is False and settings.auth is True and settings.log_json is False
    assert settings.train_epochs == 30 and isinstance(settings.train_epochs, int)
    assert settings.train_dropout == 0.25 and settings.train_holdout_fraction == 0.2
    assert settings.model_poll_seconds == 0.5 and settings.keep_versions == 3
    assert settings.train_hidden is None
    assert settings.training_overrides() == {"epochs": 30, "dropout": 0.25, "threads": 1, "seed": 42}


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("AIREC_AUTH", "maybe", ["AIREC_AUTH", "maybe", "true/false"]),
        ("AIREC_SCHEDULER", "", ["AIREC_SCHEDULER"]),
        ("AIREC_TRAIN_EPOCHS", "ten", ["AIREC_TRAIN_EPOCHS", "ten"]),
        ("AIREC_KEEP_VERSIONS", "2.5", ["AIREC_KEEP_VERSIONS", "2.5"]),
        ("AIREC_TRAIN_LR", "fast", ["AIREC_TRAIN_LR", "fast"]),
        ("AIREC_TRAIN_EVERY", "every day", ["every day", "30m"]),
        ("AIREC_TRAIN_HOLDOUT_FRACTION", "0.9", ["AIREC_TRAIN_HOLDOUT_FRACTION"]),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(monkeypatch, name, value, words):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as caught:
        Settings.from_env()
    for word in words:
        assert word in str(caught.value)


def test_overrides_win_and_unknown_ones_are_refused(monkeypatch):
    monkeypatch.setenv("AIREC_ALGORITHM", "ease")
    assert Settings.from_env({"algorithm": "itemknn"}).algorithm == "itemknn"
    with pytest.raises(KeyError, match="colour"):
        Settings.from_env({"colour": "red"})
    with pytest.raises(ValueError, match="duration"):
        Settings.from_env({"train_every": "soon"})


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30m", 1800),
        ("6h", 21600),
        ("90s", 90),
        ("1d", 86400),
        (" 2H ", 7200),
        ("off", None),
        ("", None),
        ("0", None),
        ("0m", None),
        ("never", None),
    ],
)
def test_train_every_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["30", "6 hours", "-5m", "1.5h", "m", "30m6h"])
def test_bad_train_every_is_an_error(text):
    with pytest.raises(ValueError, match="bad duration"):
        parse_duration(text)


def test_app_refuses_to_start_on_a_bad_setting(monkeypatch, settings_overrides):
    from airec.app import create_app

    monkeypatch.setenv("AIREC_KEEP_VERSIONS", "several")
    with pytest.raises(ValueError, match="AIREC_KEEP_VERSIONS='several'"):
        create_app(settings_overrides)
