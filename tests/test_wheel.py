"""The installed wheel runs outside a checkout (issue 17.10): build it, install it in a fresh virtualenv
in a temporary folder, and use the service there as an operator would: `airec keys create`,
`airec serve`, record interactions, train, recommend, open the console.

Slow (a fresh virtualenv with torch), so behind the `wheel` marker: `make test-wheel`, which CI runs.
The dependencies come from a local wheelhouse (.cache/wheelhouse), filled once by `pip wheel` through the
machine's ordinary pip set-up and refilled only when setup.cfg's requirements change; the install itself
is `--no-index` from there, with no pip configuration, so it reads nothing but that folder and the wheel.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from airec.benchmarks.server import free_port
from tests.wheel_build import ROOT, build_wheel

pytestmark = pytest.mark.wheel

WHEELHOUSE = ROOT / ".cache" / "wheelhouse"
STAMP = WHEELHOUSE / ".requirements-sha256"


def _requirements_digest() -> str:
    text = (ROOT / "setup.cfg").read_text(encoding="utf-8")
    section = text[text.index("install_requires") : text.index("[options.package_data]")]
    return hashlib.sha256(section.encode()).hexdigest()


def _fill_wheelhouse(wheel: Path) -> None:
    """Every dependency of the wheel as a wheel, once (pip's usual indexes and find-links: torch comes
    from the machine's local file as `make install` takes it)."""
    digest = _requirements_digest()
    if STAMP.is_file() and STAMP.read_text() == digest:
        return
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(WHEELHOUSE), str(wheel)],
        check=True,
        timeout=1500,
    )
    for built in WHEELHOUSE.glob("airec-*.whl"):  # the project's own wheel is built fresh each time
        built.unlink()
    STAMP.write_text(digest)


def _clean_env(venv: Path) -> dict[str, str]:
    """No trace of the checkout, the test's virtualenv, pip's configuration or airec settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AIREC_", "PIP_", "PYTHON", "VIRTUAL_ENV", "PROMETHEUS_"))
    }
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        PIP_CONFIG_FILE=os.devnull,
        PYTHONUNBUFFERED="1",
        AIREC_TRAIN_EVERY="off",
        AIREC_MODEL_POLL_SECONDS="0.5",
    )
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh virtualenv holding only the wheel and its dependencies."""
    workdir = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(workdir)
    _fill_wheelhouse(wheel)
    venv = workdir / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = _clean_env(venv)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-compile", "--no-index"]
        + ["--find-links", str(WHEELHOUSE), str(wheel)],
        check=True,
        env=env,
        timeout=1200,
    )
    return venv, env


@pytest.fixture()
def rundir(tmp_path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    return folder


def _run(venv: Path, env: dict[str, str], cwd: Path, *args: str) -> str:
    done = subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_installed_package_is_the_one_that_runs(installed, rundir):
    venv, env = installed
    where = _run(
        venv, env, rundir, "python", "-c", "import airec, sys; print(airec.__file__); print(sys.path)"
    )
    module, path = where.splitlines()
    assert Path(module).is_relative_to(venv)
    assert str(ROOT) not in path
    assert (Path(module).parent / "migrations" / "001_initial.py").is_file()


@pytest.fixture()
def server(installed, rundir) -> Iterator[tuple[str, str]]:
    """`airec serve` in a folder of its own (default SQLite file and model store there), with an admin key."""
    venv, env = installed
    printed = _run(venv, env, rundir, "airec", "keys", "create", "--name", "wheel", "--role", "admin")
    key = re.search(r"airec_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])", printed).group(0)  # logs go to stdout too
    port = free_port()
    log = open(rundir / "serve.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [str(venv / "bin" / "airec"), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=rundir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: process.poll() is None and _ok(url + "/readyz"), 120, rundir / "serve.log")
        yield url, key
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        log.close()


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _wait(check, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.3)


def test_airec_serve_from_the_wheel_records_trains_and_recommends(server, rundir):
    url, key = server
    auth = {"Authorization": f"Bearer {key}"}
    records = [{"user": f"u{n}", "items": [f"g{n % 3}-{i}" for i in range(4)]} for n in range(30)]
    stored = requests.post(f"{url}/api/v1/interactions", json={"records": records}, headers=auth, timeout=30)
    assert stored.status_code == 201, stored.text

    started = requests.post(f"{url}/api/v1/training", json={"algorithm": "ease"}, headers=auth, timeout=30)
    assert started.status_code == 202, started.text
    run_url = f"{url}/api/v1/training/runs/{started.json()['run']['id']}"
    runs: list[dict] = []

    def finished() -> bool:
        runs.append(requests.get(run_url, headers=auth, timeout=30).json()["run"])
        return runs[-1]["status"] in ("succeeded", "failed")

    _wait(finished, 180, rundir / "serve.log")
    run = runs[-1]
    assert run["status"] == "succeeded", run
    version = run["model_version"]

    answers: list[dict] = []

    def served() -> bool:
        ask = {"items": ["g1-0", "g1-1"], "k": 2}
        answers.append(
            requests.post(f"{url}/api/v1/recommendations", json=ask, headers=auth, timeout=30).json()
        )
        return answers[-1].get("model_version") == version

    _wait(served, 60, rundir / "serve.log")
    assert sorted(entry["item"] for entry in answers[-1]["items"]) == ["g1-2", "g1-3"]
    # Everything it wrote is in its own folder: the default SQLite file and model store.
    assert (rundir / "airec.db").is_file()
    assert (rundir / "models_store" / version).is_dir()


def test_the_console_and_api_docs_come_from_the_wheel(server):
    url, _ = server
    login = requests.get(f"{url}/login", timeout=30)
    assert login.status_code == 200 and "<form" in login.text
    assert requests.get(f"{url}/console/static/console.css", timeout=30).status_code == 200
    spec = requests.get(f"{url}/openapi.json", timeout=30)
    assert spec.status_code == 200 and "/api/v1/recommendations" in spec.json()["paths"]
