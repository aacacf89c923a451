"""`airec dump` and `airec restore` (issue 21): across engines with the same answers after, one point in
time while ingest runs, damaged/altered/newer dumps refused with the database untouched, --force."""

from __future__ import annotations

import datetime as dt
import json
import threading
import zipfile
from contextlib import closing
from pathlib import Path

import pytest

from airec.cli import main
from tests.synthetic import ingest, planted, recommend, train, without_id

BASKET = ["g1-i0", "g1-i1"]


@pytest.fixture
def pg_url():
    from tests.pg_helpers import fresh_database

    with fresh_database("airec_h11") as url:
        yield url


def _cli(monkeypatch, url: str, models: Path, *argv: str) -> int:
    monkeypatch.setenv("AIREC_DATABASE_URL", url)
    monkeypatch.setenv("AIREC_MODELS_DIR", str(models))
    monkeypatch.setenv("AIREC_SCHEDULER", "false")
    monkeypatch.setenv("AIREC_LOG_LEVEL", "WARNING")
    return main([*argv])


def _app(settings_overrides: dict, url: str, models: Path):
    from airec.app import create_app

    return create_app(
        {**settings_overrides, "database_url": url, "models_dir": str(models), "model_poll_seconds": 0}
    )


def _everything(client) -> list[dict]:
    rows, after = [], 0
    while True:
        page = client.get(f"/api/v1/interactions?after={after}&limit=1000").get_json()
        rows += page["interactions"]
        if page["next_after"] is None:
            return rows
        after = page["next_after"]


def _round_trip(settings_overrides, tmp_path, monkeypatch, capsys, source_url: str, target_url: str):
    source_models, target_models = tmp_path / "models-a", tmp_path / "models-b"
    source = _app(settings_overrides, source_url, source_models).test_client()
    records, _ = planted(units=200)
    ingest(source, records)
    run = train(source, {"algorithm": "itemknn"})
    before = without_id(recommend(source, BASKET, k=8))
    rows_before = _everything(source)
    models_before = source.get("/api/v1/models").get_json()

    dump_file = tmp_path / "backup.airec"
    assert _cli(monkeypatch, source_url, source_models, "dump", str(dump_file), "--with-models") == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["rows"]["interactions"] == len(rows_before)
    assert printed["models"] == [run["model_version"]]

    assert _cli(monkeypatch, target_url, target_models, "restore", str(dump_file), "--no-progress") == 0
    restored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert restored["tables"]["interactions"] == len(rows_before)
    assert restored["models"] == [run["model_version"]]

    target = _app(settings_overrides, target_url, target_models).test_client()
    assert without_id(recommend(target, BASKET, k=8)) == before  # the same active version, the same answer
    assert _everything(target) == rows_before  # ids, users, items and times kept
    assert target.get("/api/v1/models").get_json() == models_before
    audit = target.get("/api/v1/audit?action=restore.performed").get_json()
    assert [(e["actor"], e["target"]) for e in audit["entries"]] == [("cli", str(dump_file))]
    # Sequences moved past the restored ids: the next record's ids follow the last restored one.
    assert target.post("/api/v1/interactions", json={"user": "new", "items": ["n1"]}).status_code == 201
    newest = _everything(target)[-1]
    assert newest["user"] == "new" and newest["id"] > rows_before[-1]["id"]


@pytest.mark.postgres
def test_sqlite_dump_restores_into_postgresql_and_answers_the_same(
    settings_overrides, tmp_path, monkeypatch, capsys, pg_url
):
    _round_trip(settings_overrides, tmp_path, monkeypatch, capsys, f"sqlite:///{tmp_path}/a.db", pg_url)


@pytest.mark.postgres
def test_postgresql_dump_restores_into_sqlite_and_answers_the_same(
    settings_overrides, tmp_path, monkeypatch, capsys, pg_url
):
    _round_trip(settings_overrides, tmp_path, monkeypatch, capsys, pg_url, f"sqlite:///{tmp_path}/b.db")


EXTRA_TABLE = {
    "sqlite": "id INTEGER PRIMARY KEY, note TEXT, seen BOOLEAN, at DATETIME, score REAL, data BLOB",
    "postgresql": (
        "id SERIAL PRIMARY KEY, note TEXT, seen BOOLEAN, at TIMESTAMP, score DOUBLE PRECISION, data BYTEA"
    ),
}
EXTRA_ROWS = [
    (
        1,
        "tab\there\nnew line \\ back \\N",
        True,
        dt.datetime(2026, 1, 2, 3, 4, 5, 500000),
        0.1 + 0.2,
        b"\0\1\xff\\\t",
    ),
    (2, None, False, None, None, None),
    (3, "", False, dt.datetime(2026, 1, 2), -1e300, b""),
]


@pytest.mark.postgres
@pytest.mark.parametrize("source,target", [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_a_table_no_list_names_is_dumped_and_restored_with_every_kind_of_value(
    source, target, tmp_path, pg_url
):
    """A table added by someone else's migration (no model, no list names it) goes into the dump and
    comes back across engines: escaped text, booleans, timestamps, exact floats, bytes, NULLs."""
    from airec.backup.dump import dump
    from airec.backup.restore import restore
    from airec.db import init_db, migrate

    urls = {"sqlite": f"sqlite:///{tmp_path}/extra.db", "postgresql": pg_url}
    for engine, url in ((source, urls[source]), (target, urls[target])):
        db = init_db(url)
        db.connect()
        migrate(db)
        db.execute_sql(f"CREATE TABLE h11_extra ({EXTRA_TABLE[engine]})")
        if engine == source:
            marks = ", ".join([db.param] * 6)
            for row in EXTRA_ROWS:
                db.execute_sql(
                    f"INSERT INTO h11_extra (id, note, seen, at, score, data) VALUES ({marks})", row
                )
            manifest = dump(tmp_path / "d.airec", progress=False)
            assert manifest["tables"]["h11_extra"]["rows"] == 3
        else:
            restore(tmp_path / "d.airec", progress=False)
            got = db.execute_sql(
                "SELECT id, note, seen, at, score, data FROM h11_extra ORDER BY id"
            ).fetchall()
        db.close()
    normal = [
        (i, note, bool(seen), None if at is None else str(at), score, None if data is None else bytes(data))
        for i, note, seen, at, score, data in got
    ]
    assert normal == [
        (i, note, seen, None if at is None else str(at), score, data)
        for i, note, seen, at, score, data in EXTRA_ROWS
    ]


# --- one point in time while ingest goes on ---------------------------------------------------------


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_a_dump_taken_during_ingest_restores_exactly_one_point_of_it(
    engine, settings_overrides, tmp_path, request
):
    from airec.backup.dump import dump
    from airec.backup.restore import restore
    from airec.db import database, init_db, migrate
    from airec.imports import import_file

    if engine == "postgresql":
        source_url = request.getfixturevalue("pg_url")
    else:
        source_url = f"sqlite:///{tmp_path}/source.db"
    app = _app(settings_overrides, source_url, tmp_path / "m")
    client = app.test_client()
    history = tmp_path / "history.csv"  # enough rows that the dump takes a while
    history.write_text(
        "user,item\n" + "".join(f"h{u},i{u % 977}_{k}\n" for u in range(6000) for k in range(8))
    )
    database.connect(reuse_if_open=True)
    import_file(history, "csv", progress=False)
    database.close()

    stop, posted = threading.Event(), []

    def ingester() -> None:
        n = 0
        while not stop.is_set():
            body = {"user": f"c{n}", "items": [f"x{n}a", f"x{n}b", f"x{n}c"]}
            assert client.post("/api/v1/interactions", json=body).status_code == 201
            posted.append(n)
            n += 1

    thread = threading.Thread(target=ingester)
    thread.start()
    while len(posted) < 5:
        pass
    database.connect(reuse_if_open=True)
    started_at = len(posted)
    dump(tmp_path / "during.airec", progress=False)
    ended_at = len(posted)
    database.close()
    stop.set()
    thread.join(30)
    assert ended_at > started_at  # ingest went on during the dump

    target = init_db(f"sqlite:///{tmp_path}/restored.db")
    target.connect()
    migrate(target)
    restore(tmp_path / "during.airec", progress=False)
    users = {name for (name,) in target.execute_sql("SELECT name FROM users WHERE name LIKE 'c%'")}
    n = len(users)
    assert users == {f"c{i}" for i in range(n)}  # a prefix of the ingest: nothing from after a gap
    assert started_at <= n <= ended_at
    (interactions,) = target.execute_sql(
        "SELECT count(*) FROM interactions i JOIN users u ON u.id = i.user_id WHERE u.name LIKE 'c%'"
    ).fetchone()
    (items,) = target.execute_sql("SELECT count(*) FROM items WHERE name LIKE 'x%'").fetchone()
    (records,) = target.execute_sql("SELECT count(*) FROM records").fetchone()
    assert (interactions, items, records) == (3 * n, 3 * n, 6000 + n)  # no torn record, user or item
    target.close()


# --- refusals: the database untouched --------------------------------------------------------------


@pytest.fixture
def small_dump(db, tmp_path) -> Path:
    from airec.backup.dump import dump
    from airec.ingestion.service import ingest_records

    ingest_records([{"user": f"u{n}", "items": ["a", "b", f"i{n}"]} for n in range(50)])
    dump(tmp_path / "small.airec", progress=False)
    return tmp_path / "small.airec"


def _rewrite(source: Path, target: Path, change) -> None:
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, change(info.filename, zin.read(info.filename)))


def _restore_refused(tmp_path: Path, monkeypatch, capsys, path: Path, *flags: str) -> str:
    url = f"sqlite:///{tmp_path}/refused.db"
    code = _cli(monkeypatch, url, tmp_path / "mb", "restore", str(path), "--no-progress", *flags)
    err = capsys.readouterr().err
    assert code == 2, err
    with closing(__import__("sqlite3").connect(tmp_path / "refused.db")) as conn:
        assert conn.execute("SELECT count(*) FROM interactions").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (0,)
    return err


def test_a_truncated_dump_is_refused_and_nothing_written(small_dump, tmp_path, monkeypatch, capsys):
    cut = tmp_path / "cut.airec"
    data = small_dump.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated" in _restore_refused(tmp_path, monkeypatch, capsys, cut)


def test_an_altered_table_is_refused_naming_it(small_dump, tmp_path, monkeypatch, capsys):
    altered = tmp_path / "altered.airec"

    def swap(name: str, data: bytes) -> bytes:
        return data.replace(b"\t3\n", b"\t4\n", 1) if name == "tables/interactions.tsv" else data

    _rewrite(small_dump, altered, swap)
    err = _restore_refused(tmp_path, monkeypatch, capsys, altered)
    assert "tables/interactions.tsv" in err and "checksum" in err


def test_a_dump_from_a_newer_schema_is_refused_naming_both_versions(
    small_dump, tmp_path, monkeypatch, capsys
):
    from airec.backup.tables import code_schema

    newer = tmp_path / "newer.airec"

    def future(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        manifest = json.loads(data)
        manifest["schema_version"] = "999_from_the_future"
        return json.dumps(manifest).encode()

    _rewrite(small_dump, newer, future)
    err = _restore_refused(tmp_path, monkeypatch, capsys, newer)
    assert "999_from_the_future" in err and code_schema() in err


def test_a_database_that_is_not_empty_needs_force(small_dump, tmp_path, monkeypatch, capsys):
    from airec.db import database

    url = f"sqlite:///{tmp_path}/busy.db"
    assert (
        _cli(monkeypatch, url, tmp_path / "mb", "import", str(_one_line_csv(tmp_path)), "--format", "csv")
        == 0
    )
    capsys.readouterr()
    assert _cli(monkeypatch, url, tmp_path / "mb", "restore", str(small_dump), "--no-progress") == 2
    assert "not empty (" in capsys.readouterr().err
    assert (
        _cli(monkeypatch, url, tmp_path / "mb", "restore", str(small_dump), "--force") == 2
    )  # not confirmed
    assert "--yes" in capsys.readouterr().err
    assert _cli(monkeypatch, url, tmp_path / "mb", "restore", str(small_dump), "--force", "--yes") == 0
    database.connect(reuse_if_open=True)
    names = {name for (name,) in database.execute_sql("SELECT name FROM users")}
    database.close()
    assert names == {f"u{n}" for n in range(50)}  # replaced, not merged


def _one_line_csv(folder: Path) -> Path:
    path = folder / "one.csv"
    path.write_text("user,item\nsomeone,something\n")
    return path
