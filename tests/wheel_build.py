"""Build airec's wheel the way `pip install .` does, from a copy of the sources (so that no stale
build/ folder of the checkout leaks into it). Used by tests/test_packaging.py and tests/test_wheel.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: What a build reads: the packaging files and the two source folders the wheel carries.
SOURCES = ("setup.py", "setup.cfg", "pyproject.toml", "README.md", "airec", "migrations")


def build_wheel(workdir: Path) -> Path:
    """The wheel of the current sources, built offline with this interpreter's setuptools."""
    source = workdir / "src"
    for name in SOURCES:
        origin = ROOT / name
        if origin.is_dir():
            shutil.copytree(origin, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    out = workdir / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("airec-*.whl")
    return wheel


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())
