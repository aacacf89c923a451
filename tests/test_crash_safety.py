"""SIGKILL mid-training and mid-write, corrupt manifests, truncated weights: the previous model stays."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from airec.app import create_app
from tests.synthetic import ingest, planted, recommend, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def trained(client, settings_overrides) -> str:
    records, _ = planted(units=200, seed=5)
    ingest(client, records)
    return train(client, {"algorithm": "itemknn"})["model_version"]


def _env(settings_overrides: dict) -> dict:
    return {
        **os.environ,
        "AIREC_DATABASE_URL": settings_overrides["database_url"],
        "AIREC_MODELS_DIR": settings_overrides["models_dir"],
        "AIREC_AUTH": "off",
        "AIREC_TRAIN_EVERY": "off",
        "AIREC_LOG_JSON": "0",
        "PYTHONUNBUFFERED": "1",
    }


def _restart(settings_overrides: dict):
    """A new process's view of the same database and model folder."""
    return create_app(settings_overrides).test_client()


def _wait_for(check, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    assert process.returncode == -signal.SIGKILL


def test_sigkill_during_training_keeps_previous_model_and_fails_the_run(client, trained, settings_overrides):
    """Another process died mid-run: its run is failed once its lease lapses (a short TTL here), not
    earlier on a guess, and the lease is free again for the next run."""
    env = {**_env(settings_overrides), "AIREC_TRAIN_LEASE_SECONDS": "3"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "airec.cli",
            "train",
            "--algorithm",
            "autoencoder",
            "--params",
            '{"epochs": 10000, "patience": 10000, "hidden": 64, "latent": 16}',
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def mid_run() -> bool:
            runs = client.get("/api/v1/training/runs").get_json()["runs"]
            return runs[0]["id"] == 2 and runs[0]["status"] == "running" and runs[0]["progress"]["epoch"] >= 1

        _wait_for(mid_run)
    finally:
        _kill(process)

    restarted = _restart({**settings_overrides, "train_lease_seconds": 3})
    assert restarted.get("/api/v1/training/runs/2").get_json()["run"]["status"] == "running"  # not yet lapsed
    _wait_for(lambda: restarted.get("/api/v1/training/runs/2").get_json()["run"]["status"] == "failed", 15)
    run = restarted.get("/api/v1/training/runs/2").get_json()["run"]
    assert "interrupted" in run["error"]
    assert run["history"], "epochs done before the kill are kept"
    assert restarted.get("/api/v1/models").get_json()["active"] == trained
    assert recommend(restarted, ["g0-i0"])["model_version"] == trained
    assert train(restarted, {"algorithm": "popularity"})["status"] == "succeeded"  # lease not stuck


#: Run as a file, so that the fit's child process (which imports the main module) hangs too.
KILL_MID_WRITE = textwrap.dedent(
    """
    import os, time
    from airec.recsys.algorithms.itemknn import ItemKNN

    real_save = ItemKNN.save

    def save_then_hang(self, path):
        real_save(self, path)
        print("WRITING", os.getpid(), flush=True)
        time.sleep(120)

    ItemKNN.save = save_then_hang

    if __name__ == "__main__":
        from airec.cli import bootstrap
        from airec.config import Settings
        from airec.training import service

        settings = Settings.from_env()
        bootstrap(settings)
        service.start_run(settings=settings, algorithm="itemknn", background=False)
    """
)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"  # a zombie is dead too


def test_sigkill_during_model_write_leaves_no_half_model(client, trained, settings_overrides, tmp_path):
    script = tmp_path / "kill_mid_write.py"
    script.write_text(KILL_MID_WRITE)
    env = {**_env(settings_overrides), "AIREC_TRAIN_LEASE_SECONDS": "3"}
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = []
        while not lines or not lines[-1].startswith("WRITING"):  # log lines come first
            line = process.stdout.readline()
            assert line, f"exited before writing: {lines}"
            lines.append(line.strip())
    finally:
        _kill(process)
    writer = int(lines[-1].split()[1])
    assert writer != process.pid  # the fit and its write ran in a child process
    _wait_for(lambda: _gone(writer), timeout=10)  # which died with the process that started it
    models_dir = Path(settings_overrides["models_dir"])
    leftovers = [p.name for p in models_dir.iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "the kill landed mid-write"
    assert [p.name for p in models_dir.iterdir() if not p.name.startswith(".")] == [trained]

    restarted = _restart({**settings_overrides, "train_lease_seconds": 3})
    assert restarted.get("/api/v1/models").get_json()["active"] == trained
    assert recommend(restarted, ["g0-i0"])["model_version"] == trained
    _wait_for(lambda: restarted.get("/api/v1/training/runs/2").get_json()["run"]["status"] == "failed", 15)
    new = train(restarted, {"algorithm": "itemknn"})["model_version"]
    assert not [p for p in models_dir.iterdir() if p.name.startswith(".tmp-")]  # cleaned by the next write
    assert recommend(restarted, ["g0-i0"])["model_version"] == new


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def errors():
    handler = _Collect()
    logger = logging.getLogger("airec.serving.served")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _damage(folder: Path, how: str) -> None:
    if how == "manifest":
        (folder / "manifest.json").write_text('{"version": "x", "files": {', encoding="utf-8")
    elif how == "checksum":
        manifest = (folder / "manifest.json").read_text(encoding="utf-8")
        (folder / "manifest.json").write_text(manifest.replace('"files": {', '"files": {"extra.bin": "00", '))
    else:  # truncate the weights
        weights = folder / "similarity.npz"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])


@pytest.mark.parametrize("how", ["manifest", "checksum", "truncated"])
def test_damaged_new_version_is_refused_at_restart_and_previous_stays(
    client, trained, settings_overrides, errors, how
):
    newer = train(client, {"algorithm": "itemknn"})["model_version"]
    _damage(Path(settings_overrides["models_dir"]) / newer, how)

    restarted = _restart(settings_overrides)
    assert recommend(restarted, ["g0-i0"])["model_version"] == trained
    listing = restarted.get("/api/v1/models").get_json()
    assert listing["active"] == trained  # the pointer moved back, so every worker agrees
    assert {v["version"]: v["status"] for v in listing["versions"]} == {trained: "active", newer: "failed"}
    assert any(newer in message and "refusing" in message for message in errors), errors
    refused = restarted.post(f"/api/v1/models/{newer}/activate")
    assert refused.status_code == 422, refused.get_json()


def test_poller_refuses_a_corrupt_version_another_host_activated(client, trained, settings_overrides, errors):
    from airec import leases
    from airec.db import database
    from airec.serving.served import served_model

    newer = train(client, {"algorithm": "itemknn"})["model_version"]
    assert client.post(f"/api/v1/models/{trained}/activate").status_code == 200
    _damage(Path(settings_overrides["models_dir"]) / newer, "truncated")
    with database.connection_context():
        leases.set_active_version(newer)  # as if another host flipped the pointer
        assert served_model.sync() == trained
        assert leases.get_active_version() == trained
    assert recommend(client, ["g0-i0"])["model_version"] == trained
    assert any("refusing" in message for message in errors)


def test_a_repaired_version_is_served_again_after_its_files_are_restored(client, trained, settings_overrides):
    from airec import leases
    from airec.db import database
    from airec.serving.served import served_model

    newer = train(client, {"algorithm": "itemknn"})["model_version"]
    assert client.post(f"/api/v1/models/{trained}/activate").status_code == 200
    weights = Path(settings_overrides["models_dir"]) / newer / "similarity.npz"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 3])
    with database.connection_context():
        leases.set_active_version(newer)
        assert served_model.sync() == trained  # refused while damaged
        leases.set_active_version(newer)
        assert served_model.sync() == trained  # and not retried while its files are unchanged
        weights.write_bytes(good)  # the operator restores the file
        leases.set_active_version(newer)
        assert served_model.sync() == newer
