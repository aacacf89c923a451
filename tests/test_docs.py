"""The documentation stays true to the code: docs/configuration.md lists exactly the settings airec reads,
every relative link in README.md and docs/ resolves (files and #anchors), the README stays a front door
(at most 300 lines), and the `airec` command's docstring names every command it has."""

from __future__ import annotations

import dataclasses
import re
import typing
from enum import StrEnum
from pathlib import Path

import pytest

from airec.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "airec" / "recsys" / "README.md", *DOCS]

#: One row of a settings table: | `AIREC_X` | type | default | meaning |
ROW = re.compile(r"^\| `(AIREC_[A-Z0-9_]+)` \| ([a-z]+) \| ([^|]+) \| (.+) \|$")
TYPES = {"str": {"str", "duration", "size"}, "int": {"int"}, "float": {"float"}, "bool": {"bool"}}


def table_rows(page: Path, heading: str) -> list[re.Match]:
    """The settings rows under `heading` (up to the next heading of the same level)."""
    text = page.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end != -1 else None]
    lines = [line for line in section.splitlines() if line.startswith("| `AIREC_")]
    rows = [ROW.match(line) for line in lines]
    assert all(rows), [line for line, row in zip(lines, rows, strict=True) if not row]
    return rows


def field_kind(field: dataclasses.Field) -> str:
    """bool, int, float or str; a StrEnum field (a mode, a store kind) is documented as a str."""
    hint = typing.get_type_hints(Settings)[field.name]
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        return "str"
    annotation = str(field.type)
    return next(kind for kind in ("bool", "int", "float", "str") if kind in annotation)


def test_configuration_lists_exactly_the_settings_config_reads_with_their_types():
    rows = table_rows(ROOT / "docs" / "configuration.md", "## Service settings (`airec/config.py`)")
    documented = [row.group(1) for row in rows]
    fields = {f"AIREC_{field.name.upper()}": field for field in dataclasses.fields(Settings)}
    assert len(documented) == len(set(documented)), "a setting is documented twice"
    assert set(fields) - set(documented) == set(), "settings airec/config.py reads but the table lacks"
    assert set(documented) - set(fields) == set(), "documented settings airec/config.py does not read"
    for row in rows:
        kind = field_kind(fields[row.group(1)])
        assert row.group(2) in TYPES[kind], f"{row.group(1)} is a {kind}, documented as {row.group(2)}"
        assert row.group(3).strip() and row.group(4).strip()


def test_configuration_lists_the_process_settings_gunicorn_and_serve_read():
    read = set()
    for source in (ROOT / "airec" / "gunicorn_conf.py", ROOT / "airec" / "cli.py"):
        read |= set(re.findall(r"""environ\.get\(["'](AIREC_[A-Z0-9_]+)["']""", source.read_text()))
    read -= {f"AIREC_{field.name.upper()}" for field in dataclasses.fields(Settings)}
    heading = "## Process settings (`airec serve` and `airec/gunicorn_conf.py`)"
    rows = table_rows(ROOT / "docs" / "configuration.md", heading)
    assert {row.group(1) for row in rows} == read


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", without_fences(page.read_text()), flags=re.M):
        base = slug(heading)
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def without_fences(text: str) -> str:
    """Markdown without its fenced blocks (where `#` starts a comment, not a heading)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


def without_code(text: str) -> str:
    """Markdown without fenced blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", without_fences(text))


def relative_links(page: Path) -> list[str]:
    text = without_code(page.read_text())
    targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r"""<img [^>]*src="([^"]+)\"""", text)
    return [t for t in targets if not re.match(r"^[a-z]+:", t)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path):
    links = relative_links(page)
    broken = []
    for link in links:
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no {target}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            broken.append(f"{link}: no heading #{anchor} in {target.relative_to(ROOT)}")
    assert broken == []


def test_the_link_check_sees_links_and_would_catch_a_broken_one(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n## Two words: `code`\n\n[ok](#two-words-code) [bad](#nope) [gone](missing.md)\n"
    )
    assert relative_links(page) == ["#two-words-code", "#nope", "missing.md"]
    assert anchors(page) == {"a-page", "two-words-code"}
    assert len(relative_links(ROOT / "README.md")) >= 8  # the README links to every page of docs/
    assert {p.name for p in DOCS} <= {Path(link).name for link in relative_links(ROOT / "README.md")}


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300
    for heading in ("## Two commands", "## A five-minute tour", "## API map", "## Documentation"):
        assert f"\n{heading}\n" in text


def test_the_cli_docstring_names_every_command():
    import argparse

    from airec import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summary = cli.__doc__.split("\n\n")[0]
    missing = [name for name in sub.choices if not re.search(rf"\b{name}\b", summary)]
    assert missing == []
