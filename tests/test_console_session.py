"""The console's session secret: AIREC_SECRET_KEY when set, else one generated and shared by every worker."""

from __future__ import annotations

import stat
from concurrent.futures import ProcessPoolExecutor

import pytest

from airec.config import Settings
from airec.console.session import SECRET_FILE, load_or_create_secret


def test_a_generated_secret_is_kept_private_and_reused_after_a_restart(settings_overrides, tmp_path):
    from airec.app import create_app

    first = create_app(settings_overrides)
    path = tmp_path / "models" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(first.secret_key) >= 32
    assert create_app(settings_overrides).secret_key == first.secret_key
    assert list((tmp_path / "models").glob(f"{SECRET_FILE}.*")) == []  # no temporary file left behind


def test_the_secret_setting_wins_and_must_be_long(settings_overrides):
    from airec.app import create_app

    secret = "s" * 40
    assert create_app({**settings_overrides, "secret_key": secret}).secret_key == secret
    with pytest.raises(ValueError, match="AIREC_SECRET_KEY must be at least 32"):
        Settings.from_env({"secret_key": "short"})
    assert secret not in repr(Settings(secret_key=secret))


def test_workers_starting_together_agree_on_one_secret(tmp_path):
    with ProcessPoolExecutor(max_workers=4) as pool:
        secrets = set(pool.map(load_or_create_secret, [tmp_path] * 16))
    assert len(secrets) == 1


def test_an_empty_secret_file_is_refused_with_what_to_do(tmp_path):
    (tmp_path / SECRET_FILE).write_text("")
    with pytest.raises(RuntimeError, match="AIREC_SECRET_KEY"):
        load_or_create_secret(tmp_path)


def test_a_session_signed_by_another_secret_is_not_trusted(settings_overrides, keys, auth_app):
    from airec.app import create_app

    client = auth_app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    assert client.post("/login", data={"api_key": keys["read"], "csrf_token": token}).status_code == 303
    cookie = client.get_cookie("airec_console").value
    other = create_app({**settings_overrides, "auth": True, "secret_key": "o" * 40}).test_client()
    other.set_cookie("airec_console", cookie)
    assert other.get("/").status_code == 303  # not signed in there
