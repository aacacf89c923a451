"""The one allow-list for names that become paths under AIREC_MODELS_DIR.

Model versions, the files inside a model folder and the temporary `.fetch-*` folders built from them
come from the database, a manifest or a folder listing; each is checked here where it is read, before
it is joined to a path, so a row edited to `../../etc` can never make the service read or write
outside its model store.
"""

from __future__ import annotations

import re
from pathlib import Path

from airec.modelstore.base import CorruptModel

#: Letters, digits, `_ . -`, a letter or digit first (so never `.`, `..` or a hidden name), no
#: separator: what airec.modelstore.folders.new_version makes, and what an operator may type.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class UnsafeName(CorruptModel):
    """A name that would leave its folder (or is no name the service writes) if joined to a path: the
    model it names cannot be served, as a corrupt one cannot."""


def safe_name(name: object, what: str = "model version") -> str:
    """`name` itself when it may be one path component under the model store; raises UnsafeName."""
    if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
        raise UnsafeName(
            f"{what} {name!r} is not a safe name (1-128 letters, digits, _ . -, a letter or digit "
            "first, no path separator); refusing to use it as a path"
        )
    return name


def safe_relative(name: object, what: str = "model file") -> str:
    """A file name inside a model folder, sub-folders allowed (`linear/B.npy`): each part must be a
    safe name, so the path stays inside the folder; raises UnsafeName."""
    if not isinstance(name, str) or not name:
        raise UnsafeName(f"{what} {name!r} is not a safe relative path")
    for part in name.split("/"):
        safe_name(part, f"{what} {name!r}: part")
    return name


def child(base: Path | str, name: object, what: str = "model version") -> Path:
    """`base / name` once `name` passed safe_name."""
    return Path(base) / safe_name(name, what)
