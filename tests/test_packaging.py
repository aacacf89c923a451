"""The wheel carries everything the service reads from disk (issue 17.10), checked fast on its file list;
tests/test_wheel.py installs it outside the checkout and runs it."""

from __future__ import annotations

from pathlib import Path

import peewee
import pytest

from airec.db import migrations as schema
from tests.wheel_build import ROOT, build_wheel, wheel_names


@pytest.fixture(scope="module")
def names(tmp_path_factory) -> set[str]:
    return wheel_names(build_wheel(tmp_path_factory.mktemp("wheel")))


def test_the_wheel_carries_the_migrations_as_package_data(names):
    migrations = sorted(path.name for path in (ROOT / "migrations").glob("[0-9][0-9][0-9]_*.py"))
    assert migrations, "the checkout has no migrations to compare with"
    assert sorted(n.split("/")[-1] for n in names if n.startswith("airec/migrations/")) == migrations


def test_the_wheel_carries_gunicorn_settings_and_wsgi_app(names):
    assert {"airec/gunicorn_conf.py", "airec/wsgi.py"} <= names


def test_the_wheel_carries_console_templates_and_static_files(names):
    console = ROOT / "airec" / "console"
    files = [*console.glob("templates/console/*.html"), *console.glob("static/*")]
    assert len(files) > 5
    missing = {path.relative_to(ROOT).as_posix() for path in files} - names
    assert not missing, f"not in the wheel: {sorted(missing)}"


def test_the_wheel_holds_no_tests_and_no_top_level_modules(names):
    assert not [n for n in names if n.startswith("tests/")]
    assert {n.split("/")[0] for n in names if not n.startswith("airec-")} == {"airec"}


def test_migrate_without_migrations_names_both_places(tmp_path, monkeypatch):
    """A broken install (no migrations anywhere) stops with a message that says where it looked."""
    monkeypatch.setattr(schema, "PACKAGE_MIGRATIONS", tmp_path / "package")
    monkeypatch.setattr(schema, "CHECKOUT_MIGRATIONS", tmp_path / "checkout")
    db = peewee.SqliteDatabase(str(tmp_path / "h1.db"))
    with pytest.raises(schema.MigrationsMissing) as caught:
        schema.migrate(db)
    assert str(tmp_path / "package") in str(caught.value)
    assert str(tmp_path / "checkout") in str(caught.value)
    assert db.get_tables() == []  # nothing half-made


def test_a_checkout_finds_its_top_level_migrations():
    """Here (a checkout, airec/ without migrations/) the top-level folder is the one used."""
    expected = ROOT / "migrations"
    if (ROOT / "airec" / "migrations").is_dir():
        pytest.skip("this checkout has an airec/migrations folder")
    assert schema.migrations_dir() == expected
    assert Path(schema.CHECKOUT_MIGRATIONS) == expected
