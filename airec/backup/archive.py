"""The dump file: a zip holding `manifest.json`, one deflated member per table (`tables/NAME.tsv`, COPY
text lines) and, with --with-models, the model folders (`models/VERSION/FILE`). The manifest is written
last and read first; every member's SHA-256 and row count are in it and are checked, all of them,
before a restore writes anything."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

FORMAT = "airec-dump"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20


class DumpRefused(ValueError):
    """A dump that cannot be restored (truncated, altered, newer schema, ...); the message says why."""


def table_member(table: str) -> str:
    return f"tables/{table}.tsv"


class HashingWriter:
    """A binary member being written, counting its bytes and lines and hashing them on the way."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.sha = hashlib.sha256()
        self.bytes = 0
        self.lines = 0

    def write(self, data: bytes | str) -> int:
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sha.update(data)
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        self.raw.write(data)
        return len(data)

    def summary(self) -> dict:
        return {"rows": self.lines, "bytes": self.bytes, "sha256": self.sha.hexdigest()}


@contextmanager
def member_writer(archive: zipfile.ZipFile, name: str) -> Iterator[HashingWriter]:
    with archive.open(name, "w", force_zip64=True) as raw:
        yield HashingWriter(raw)


def open_for_writing(path: str | Path) -> zipfile.ZipFile:
    return zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True)


def write_manifest(archive: zipfile.ZipFile, manifest: dict) -> None:
    archive.writestr(MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def open_for_reading(path: str | Path) -> tuple[zipfile.ZipFile, dict]:
    """The archive and its manifest; raises DumpRefused naming what is wrong."""
    try:
        archive = zipfile.ZipFile(path, "r")
    except FileNotFoundError:
        raise DumpRefused(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise DumpRefused(f"{path}: not a complete airec dump (truncated or not a zip file: {exc})") from None
    try:
        manifest = json.loads(archive.read(MANIFEST))
    except KeyError:
        archive.close()
        raise DumpRefused(f"{path}: no {MANIFEST} in the file; it is not an airec dump") from None
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        archive.close()
        raise DumpRefused(f"{path}: {MANIFEST} is damaged ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        archive.close()
        raise DumpRefused(f"{path}: {MANIFEST} is not an airec dump's manifest")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        archive.close()
        raise DumpRefused(
            f"{path}: dump format {manifest.get('format_version')} is newer than this airec reads "
            f"({FORMAT_VERSION}); restore it with the airec version that wrote it"
        )
    return archive, manifest


def verify_member(archive: zipfile.ZipFile, name: str, expected: dict, progress=None) -> None:
    """Read member `name` whole and compare its SHA-256, size and line count with the manifest's."""
    digest, size, lines = hashlib.sha256(), 0, 0
    try:
        with archive.open(name) as member:
            for chunk in iter(lambda: member.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
                if progress is not None:
                    progress(chunk.count(b"\n"))
    except KeyError:
        raise DumpRefused(f"{name} is missing from the dump") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise DumpRefused(f"{name} is damaged: {exc}") from None
    if digest.hexdigest() != expected["sha256"] or size != expected["bytes"]:
        raise DumpRefused(
            f"{name} does not match its checksum in the manifest (altered or damaged): "
            f"sha256 {digest.hexdigest()[:12]}... of {size} bytes, expected "
            f"{expected['sha256'][:12]}... of {expected['bytes']} bytes"
        )
    if "rows" in expected and lines != expected["rows"]:
        raise DumpRefused(f"{name} holds {lines} rows, the manifest says {expected['rows']}")
