"""`airec import --items` and `airec export --items`: CSV and JSON lines, idempotent, errors by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airec.cli import main

CSV = """item,categories,labels,hidden,available_from,properties
boot,shoes|shoes/hiking,brand:acme|sale,false,2026-01-01T00:00:00Z,"{""title"": ""Boot"", ""price"": 90}"
hat,hats,,true,,
a/b,,adult,,,
"""


@pytest.fixture
def env(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("AIREC_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("AIREC_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("AIREC_SCHEDULER", "false")
    monkeypatch.setenv("AIREC_LOG_LEVEL", "WARNING")
    return tmp_path


def exported(env: Path, capsys, name: str = "out.jsonl") -> list[dict]:
    assert main(["export", "--items", str(env / name)]) == 0
    capsys.readouterr()
    return [json.loads(line) for line in (env / name).read_text().splitlines()]


def test_a_csv_catalogue_imports_once_and_again_changes_nothing(env, capsys):
    path = env / "items.csv"
    path.write_text(CSV)
    assert main(["import", "--items", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"items": 3, "created": 3, "updated": 0}
    first = exported(env, capsys)
    assert [entry["item"] for entry in first] == ["a/b", "boot", "hat"]
    boot = first[1]
    assert boot["categories"] == ["shoes", "shoes/hiking"] and boot["labels"] == ["brand:acme", "sale"]
    assert boot["properties"] == {"title": "Boot", "price": 90}
    assert boot["available_from"] == "2026-01-01T00:00:00+00:00" and first[2]["hidden"] is True

    assert main(["import", "--items", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"items": 3, "created": 0, "updated": 3}
    assert exported(env, capsys) == first


def test_json_lines_round_trip_through_export_and_csv_export_reads_back(env, capsys):
    lines = [
        {"item": "x", "categories": ["c/d"], "labels": ["l"], "hidden": True, "properties": {"k": [1, 2]}},
        {"item": "y", "available_until": "2030-01-01T00:00:00+02:00"},
    ]
    path = env / "items.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert main(["import", "--items", str(path)]) == 0
    capsys.readouterr()
    first = exported(env, capsys)
    assert first[1]["available_until"] == "2029-12-31T22:00:00+00:00"
    assert main(["export", "--items", str(env / "again.csv")]) == 0
    assert main(["import", "--items", str(env / "again.csv")]) == 0
    capsys.readouterr()
    assert exported(env, capsys) == first


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("item,labels\nok,a\nbad,\n" + "x," + "|".join(f"l{i}" for i in range(101)) + "\n", ":4: labels"),
        ("item,hidden\nok,maybe\n", ":2: hidden"),
        ("item,colour\nok,red\n", ":2: unknown column 'colour'"),
        ("item,available_from\nok,2026-01-01T00:00:00\n", ":2: available_from"),
    ],
)
def test_a_bad_line_is_named_with_its_field(env, capsys, text, where):
    path = env / "bad.csv"
    path.write_text(text)
    assert main(["import", "--items", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"bad.csv{where}" in err, err
