"""import_file(): each format from small files written here, grouping, filtering, batches, errors."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from airec.imports import ImportFormatError, import_file
from airec.stats.service import counts, item_popularity
from airec.tables import Interaction, Record, User


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def records_by_user() -> list[tuple[str | None, list[str]]]:
    out = []
    for record in Record.select().order_by(Record.id):
        rows = Interaction.select().where(Interaction.record == record).order_by(Interaction.id)
        items = [row.item.name for row in rows]
        out.append((record.user.name if record.user_id else None, items))
    return out


def test_movielens_u_data_groups_consecutive_rows_of_a_user(db, tmp_path):
    rows = ["1\t10\t5\t881250949", "1\t11\t3\t881250950", "2\t10\t4\t881250951", "1\t12\t4\t881250952"]
    path = write(tmp_path, "u.data", "\n".join(rows) + "\n")
    result = import_file(path, "movielens", progress=False)
    assert result == {"rows": 4, "skipped": 0, "records": 3, "interactions": 4}
    assert records_by_user() == [("1", ["10", "11"]), ("2", ["10"]), ("1", ["12"])]
    first = Record.select().order_by(Record.id).get()
    assert first.timestamp == dt.datetime(1997, 12, 4, 15, 55, 49)  # the earliest row of the group, UTC


def test_movielens_min_rating(db, tmp_path):
    path = write(tmp_path, "u.data", "1\t10\t5\t1\n1\t11\t3\t2\n2\t10\t4\t3\n")
    result = import_file(path, "movielens", min_rating=4, progress=False)
    assert result == {"rows": 3, "skipped": 1, "records": 2, "interactions": 2}
    assert item_popularity() == [("10", 2)]


@pytest.mark.parametrize(
    ("name", "fmt", "text", "min_rating", "kept"),
    [
        pytest.param(
            "ratings.csv",
            "movielens",
            "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,0.5,964981247\n",
            3.5,
            ("1", ["1"]),
            id="movielens-ratings-csv-with-header",
        ),
        pytest.param(
            "r.csv",
            "csv",
            'user_id,item_id,rating\n"Doe, Jane","Tea, green",5\n"Doe, Jane",Coffee,1\n',
            3,
            ("Doe, Jane", ["Tea, green"]),
            id="csv-quoted-names",
        ),
    ],
)
def test_header_tables_filtered_by_rating(db, tmp_path, name, fmt, text, min_rating, kept):
    path = write(tmp_path, name, text)
    assert import_file(path, fmt, min_rating=min_rating, progress=False)["interactions"] == 1
    assert records_by_user() == [kept]


def test_movielens_double_colon(db, tmp_path):
    path = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n")
    assert import_file(path, "movielens", progress=False)["records"] == 1


def test_csv_with_header_timestamps_and_tabs(db, tmp_path):
    path = write(
        tmp_path,
        "events.tsv",
        "user\titem\ttimestamp\nann\tbeer\t2024-05-01T20:00:00+02:00\nann\tchips\t1714586400\nbob\tbeer\t\n",
    )
    result = import_file(path, "csv", progress=False)
    assert result == {"rows": 3, "skipped": 0, "records": 2, "interactions": 3}
    assert records_by_user() == [("ann", ["beer", "chips"]), ("bob", ["beer"])]
    stamps = [r.timestamp for r in Record.select().order_by(Record.id)]
    assert stamps == [dt.datetime(2024, 5, 1, 18, 0), None]


def test_csv_needs_user_and_item_columns(db, tmp_path):
    path = write(tmp_path, "bad.csv", "who,what\na,b\n")
    with pytest.raises(ImportFormatError, match=r"bad.csv:1: header needs a column"):
        import_file(path, "csv", progress=False)


def test_baskets_comma_and_fimi(db, tmp_path):
    text = "citrus fruit,semi-finished bread\n\nwhole milk\nyogurt, coffee,yogurt\n"
    comma = write(tmp_path, "groceries.csv", text)
    assert import_file(comma, "baskets", progress=False) == {
        "rows": 3,
        "skipped": 0,
        "records": 3,
        "interactions": 5,
    }
    fimi = write(tmp_path, "retail.dat", "0 1 2 \n3 4\n")
    assert import_file(fimi, "baskets", progress=False)["records"] == 2
    assert records_by_user()[0] == (None, ["citrus fruit", "semi-finished bread"])
    assert records_by_user()[-2:] == [(None, ["0", "1", "2"]), (None, ["3", "4"])]
    assert User.select().count() == 0


def test_jsonl(db, tmp_path):
    lines = [
        {"user": "u", "items": ["a"], "timestamp": "2024-01-01T00:00:00Z"},
        {"user": "u", "items": ["b"]},
        {"items": ["ビール", "a"]},
    ]
    text = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines) + "\n"
    path = write(tmp_path, "r.jsonl", text)
    result = import_file(path, "jsonl", progress=False)
    assert result == {"rows": 3, "skipped": 0, "records": 3, "interactions": 4}
    assert records_by_user() == [("u", ["a"]), ("u", ["b"]), (None, ["ビール", "a"])]


@pytest.mark.parametrize(
    "line, needle",
    [('{"items": [', "not JSON"), ('{"items": []}', "items:"), ('{"items": ["a"], "x": 1}', "x:")],
)
def test_jsonl_bad_line_names_the_line(db, tmp_path, line, needle):
    path = write(tmp_path, "r.jsonl", '{"items": ["ok"]}\n' + line + "\n")
    with pytest.raises(ImportFormatError) as info:
        import_file(path, "jsonl", progress=False)
    assert "r.jsonl:2:" in str(info.value) and needle in str(info.value)
    assert counts()["records"] == 0  # the bad line was in the first (only) batch


def test_batches_commit_separately_and_a_late_error_keeps_earlier_batches(db, tmp_path):
    good = "".join(f"item{i} item{i + 1}\n" for i in range(50))
    path = write(tmp_path, "b.dat", good + "ok bad\x01name\n")
    with pytest.raises(ImportFormatError, match=r"b.dat:51: Contains the control character U\+0001"):
        import_file(path, "baskets", batch_size=10, progress=False)
    assert counts()["records"] == 50

    clean = write(tmp_path, "c.dat", good)
    assert import_file(clean, "baskets", batch_size=7, progress=False)["interactions"] == 100


def test_groups_are_capped_at_max_items_per_record(db, tmp_path):
    path = write(tmp_path, "u.data", "".join(f"1\t{i}\t5\t0\n" for i in range(5)) + "1\t0\t5\t0\n")
    result = import_file(path, "movielens", progress=False, max_items_per_record=2)
    assert result["records"] == 3 and result["interactions"] == 6  # [0, 1], [2, 3], [4, 0]


def test_argument_errors(db, tmp_path):
    path = write(tmp_path, "b.csv", "a,b\n")
    with pytest.raises(ValueError, match="unknown format"):
        import_file(path, "parquet", progress=False)
    with pytest.raises(ValueError, match="needs rating data"):
        import_file(path, "baskets", min_rating=4, progress=False)
    with pytest.raises(ImportFormatError, match="not valid UTF-8"):
        import_file(_latin1(tmp_path), "baskets", progress=False)


def _latin1(tmp_path: Path) -> Path:
    path = tmp_path / "latin1.dat"
    path.write_bytes("café crème\n".encode("latin-1"))
    return path


def test_a_utf8_bom_is_not_part_of_the_first_name(db, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffuser,item\nann,tea\n".encode())
    assert import_file(path, "csv", progress=False)["records"] == 1


@pytest.mark.slow
@pytest.mark.datasets
def test_real_movielens_100k(db, datasets):
    path = datasets / "ml-100k" / "u.data"
    result = import_file(path, "movielens", min_rating=4, progress=False)
    assert result["rows"] == 100_000
    assert result["interactions"] == 100_000 - result["skipped"] == 55_375
    assert counts()["users"] <= 943
