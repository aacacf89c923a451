"""`airec import --items FILE` and `airec export --items FILE`: a catalogue as CSV or JSON lines.

CSV has a header naming any of item, categories, labels, hidden, available_from, available_until,
properties; categories and labels are `|`-separated, hidden is true/false (or 1/0), properties a JSON
object, an empty cell the field's default. JSON lines hold one object per line in the API's shape. Each
entry follows the API's rules; entries are upserted in batches (each one transaction), so importing a
file again changes nothing.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from typing import IO

import marshmallow as ma
from tqdm import tqdm

from airec.catalogue import service
from airec.catalogue.schemas import BulkEntrySchema
from airec.db import database
from airec.imports import ImportFormatError
from airec.tables import ItemMeta

FORMATS = ("csv", "jsonl")
COLUMNS = ("item", "categories", "labels", "hidden", "available_from", "available_until", "properties")
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}
_ENTRY = BulkEntrySchema()


def format_of(path: str, fmt: str | None) -> str:
    """The given format, else .csv -> csv and anything else JSON lines."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"a catalogue is csv or jsonl, not {fmt!r}")
        return fmt
    return "csv" if path.lower().endswith(".csv") else "jsonl"


def _csv_entry(row: dict, where: str) -> dict:
    if None in row:
        raise ImportFormatError(f"{where}: more cells than the header names")
    unknown = set(row) - set(COLUMNS)
    if unknown:
        raise ImportFormatError(f"{where}: unknown column {sorted(unknown)[0]!r}; use {', '.join(COLUMNS)}")
    entry: dict = {}
    for column, text in row.items():
        if text is None or text == "":
            continue
        if column in ("categories", "labels"):
            entry[column] = text.split("|")
        elif column == "hidden":
            if text.lower() not in _TRUE | _FALSE:
                raise ImportFormatError(f"{where}: hidden: {text!r} is not true or false")
            entry[column] = text.lower() in _TRUE
        elif column == "properties":
            try:
                entry[column] = json.loads(text)
            except ValueError as exc:
                raise ImportFormatError(f"{where}: properties: not JSON ({exc})") from exc
        else:
            entry[column] = text
    return entry


def _entries(lines: Iterator[str], fmt: str, path: str) -> Iterator[tuple[int, dict]]:
    if fmt == "csv":
        reader = csv.DictReader(lines)
        for row in reader:
            yield reader.line_num, _csv_entry(row, f"{path}:{reader.line_num}")
        return
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ImportFormatError(f"{path}:{number}: not JSON ({exc})") from exc
        if not isinstance(entry, dict):
            raise ImportFormatError(f"{path}:{number}: not a JSON object")
        yield number, entry


def _checked(entry: dict, where: str) -> dict:
    try:
        return _ENTRY.load(entry)
    except ma.ValidationError as exc:
        field, problems = next(iter(exc.messages.items()))
        raise ImportFormatError(f"{where}: {field}: {problems}") from exc


def _counted_lines(handle: IO[bytes], bar: tqdm) -> Iterator[str]:
    for raw in handle:
        bar.update(len(raw))
        yield raw.decode("utf-8-sig").rstrip("\r\n")


def import_items(
    path: str | os.PathLike, fmt: str | None = None, *, batch_size: int = 5000, progress: bool = True
) -> dict:
    """Upsert every entry of the file; returns {"items", "created", "updated"}. A bad entry stops the
    import with ImportFormatError naming file:line and field (the batches before it are stored)."""
    path = os.fspath(path)
    fmt = format_of(path, fmt)
    totals = {"items": 0, "created": 0, "updated": 0}
    opened = database.is_closed()
    if opened:
        database.connect()
    try:
        with (
            open(path, "rb") as handle,
            tqdm(
                total=os.path.getsize(path),
                unit="B",
                unit_scale=True,
                desc=os.path.basename(path),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            batch: dict[str, dict] = {}
            for number, entry in _entries(_counted_lines(handle, bar), fmt, path):
                loaded = _checked(entry, f"{path}:{number}")
                batch[loaded["item"]] = loaded  # a later line for the same item wins
                if len(batch) >= batch_size:
                    _store(batch, totals)
                    batch = {}
            _store(batch, totals)
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"{path}: not valid UTF-8 ({exc.reason})") from exc
    finally:
        if opened:
            database.close()
    return totals


def _store(batch: dict[str, dict], totals: dict) -> None:
    if not batch:
        return
    counts = service.upsert_many(batch.values())
    totals["items"] += len(batch)
    totals["created"] += counts["created"]
    totals["updated"] += counts["updated"]


def iter_items(page: int = 5000) -> Iterator[dict]:
    """Every described item in the API's shape (name order, keyset pages)."""
    after = ""
    while True:
        rows = list(ItemMeta.select().where(ItemMeta.name > after).order_by(ItemMeta.name).limit(page))
        for row in rows:
            yield {
                "item": row.name,
                **{name: getattr(row, name) for name in service.FIELDS},
                "available_from": service.iso(row.available_from),
                "available_until": service.iso(row.available_until),
            }
        if len(rows) < page:
            return
        after = rows[-1].name


def export_items(out: IO[str], fmt: str = "jsonl") -> dict:
    """Write the catalogue (JSON lines, or CSV that `import_items` reads back); returns {"items"}."""
    count = 0
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n") if fmt == "csv" else None
    if writer is not None:
        writer.writeheader()
    for entry in iter_items():
        if writer is None:
            out.write(json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            writer.writerow(_csv_row(entry))
        count += 1
    return {"items": count}


def _csv_row(entry: dict) -> dict:
    row = dict(entry)
    row["categories"] = "|".join(entry["categories"])
    row["labels"] = "|".join(entry["labels"])
    row["hidden"] = "true" if entry["hidden"] else "false"
    row["properties"] = json.dumps(entry["properties"], ensure_ascii=False) if entry["properties"] else ""
    return {key: "" if value is None else value for key, value in row.items()}
