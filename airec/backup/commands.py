"""The `airec dump` and `airec restore` commands (their arguments and what they print)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from airec.config import Settings


def add_commands(sub, bootstrap: Callable[[Settings], None]) -> None:
    """Register `dump` and `restore` on the CLI's sub-parsers; `bootstrap` opens and migrates the
    database (airec.cli's, passed in so this module need not import the CLI)."""
    dump = sub.add_parser("dump", help="write a consistent backup of the database into one file")
    dump.add_argument("file")
    dump.add_argument("--with-models", action="store_true", help="the model folders of AIREC_MODELS_DIR too")
    dump.add_argument("--no-progress", action="store_true")
    dump.set_defaults(func=cmd_dump, bootstrap=bootstrap)

    restore = sub.add_parser("restore", help="load a backup written by `airec dump` into an empty database")
    restore.add_argument("file")
    restore.add_argument("--force", action="store_true", help="replace everything the database holds")
    restore.add_argument("--yes", action="store_true", help="with --force: do not ask for confirmation")
    restore.add_argument("--no-progress", action="store_true")
    restore.set_defaults(func=cmd_restore, bootstrap=bootstrap)


def cmd_dump(args: argparse.Namespace) -> int:
    from airec.backup.dump import dump

    settings = Settings.from_env()
    args.bootstrap(settings)
    started = time.perf_counter()
    try:
        manifest = dump(
            args.file,
            models_dir=settings.models_dir if args.with_models else None,
            progress=not args.no_progress,
        )
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    rows = {name: entry["rows"] for name, entry in manifest["tables"].items()}
    print(
        json.dumps(
            {
                "file": args.file,
                "schema_version": manifest["schema_version"],
                "rows": rows,
                "models": sorted(manifest["models"]),
                "seconds": round(seconds, 3),
            }
        )
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from airec.backup.archive import DumpRefused
    from airec.backup.bulk import ForeignKeyViolation
    from airec.backup.restore import restore

    settings = Settings.from_env()
    if args.force and not args.yes and not _confirmed(settings):
        print("error: not confirmed; nothing was changed", file=sys.stderr)
        return 2
    args.bootstrap(settings)
    started = time.perf_counter()
    try:
        result = restore(
            args.file, force=args.force, models_dir=settings.models_dir, progress=not args.no_progress
        )
    except (DumpRefused, ForeignKeyViolation, OSError) as exc:
        print(f"error: {exc}; nothing was changed", file=sys.stderr)
        return 2
    from airec.audit import service as audit

    audit.record(audit.Action.RESTORE_PERFORMED, str(args.file), details={"tables": result.get("tables")})
    result["seconds"] = round(time.perf_counter() - started, 3)
    print(json.dumps(result))
    return 0


def _confirmed(settings: Settings) -> bool:
    if not sys.stdin.isatty():
        print(
            "error: --force replaces everything; confirm with --yes when not at a terminal", file=sys.stderr
        )
        return False
    answer = input(f"Replace everything in {settings.database_url.split('@')[-1]} with the dump? [y/N] ")
    return answer.strip().lower() in ("y", "yes")
