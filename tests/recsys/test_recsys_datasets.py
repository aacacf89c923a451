"""Dataset loaders and the benchmark; the real-data tests are slow and skip without the data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airec.recsys.bench import format_table, main, prepare, run_accuracy_bench
from airec.recsys.datasets import LOADERS, DatasetMissing, load_dataset
from tests.conftest import DATASETS

EXPECTED = {  # (units, items, kind) after the documented filtering
    "ml-100k": (942, 1447, "ratings"),
    "ml-latest-small": (609, 6298, "ratings"),
    "lastfm-hetrec2011-2k": (1892, 17632, "implicit"),
    "groceries": (9835, 169, "baskets"),
    "bread-basket": (9465, 94, "baskets"),
    "belgian-retail": (88162, 16470, "baskets"),
}


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    for name in LOADERS:
        with pytest.raises(DatasetMissing, match=name):
            load_dataset(name, tmp_path)


def test_bench_skips_missing_datasets(tmp_path: Path) -> None:
    lines: list[str] = []
    res = run_accuracy_bench(
        ["groceries"], seeds=1, algorithms=["popularity"], out=lines.append, root=tmp_path
    )
    assert "skipped" in res["groceries"]
    assert "skipped" in lines[0]


def test_bread_basket_parsing(tmp_path: Path) -> None:
    folder = tmp_path / "bread-basket"
    folder.mkdir()
    (folder / "BreadBasket_DMS.csv").write_text(
        "Date,Time,Transaction,Item\n01-01-2017,10:00:00,1,Bread\n01-01-2017,10:00:00,1,Bread\n"
        "01-01-2017,10:00:00,1,Coffee\n01-01-2017,10:01:00,2,NONE\n01-01-2017,10:02:00,3,Tea\n"
    )
    ds = load_dataset("bread-basket", tmp_path)
    assert ds.kind == "baskets" and ds.X.shape == (2, 3) and ds.X.nnz == 3


def test_groceries_parsing(tmp_path: Path) -> None:
    folder = tmp_path / "groceries"
    folder.mkdir()
    (folder / "groceries.csv").write_text(
        "whole milk,rolls/buns\ncitrus fruit\nwhole milk,citrus fruit,soda\n"
    )
    ds = load_dataset("groceries", tmp_path)
    assert ds.X.shape == (3, 4) and ds.X.nnz == 6


@pytest.mark.slow
@pytest.mark.datasets
@pytest.mark.parametrize("name", list(EXPECTED))
def test_real_dataset_shapes(name: str) -> None:
    if not (DATASETS / name).is_dir():
        pytest.skip(f"{DATASETS / name} is absent (set AIREC_DATASETS to the datasets' folder)")
    ds = load_dataset(name, DATASETS)
    units, items, kind = EXPECTED[name]
    assert ds.X.shape == (units, items) and ds.kind == kind
    assert set(np.unique(ds.X.data).tolist()) == {1.0}
    assert prepare(ds.X).shape[1] <= 4000


@pytest.mark.slow
@pytest.mark.datasets
def test_bench_on_ml_100k(capsys: pytest.CaptureFixture) -> None:
    if not (DATASETS / "ml-100k").is_dir():
        pytest.skip(f"{DATASETS / 'ml-100k'} is absent (set AIREC_DATASETS to the datasets' folder)")
    res = run_accuracy_bench(
        ["ml-100k"], seeds=1, algorithms=["popularity", "ease"], out=lambda s: None, root=DATASETS
    )
    mean = res["ml-100k"]["mean"]
    assert mean["ease"]["ndcg@100"] > mean["popularity"]["ndcg@100"] + 0.05
    assert "ease" in format_table("ml-100k", res["ml-100k"])
    argv = [
        "--datasets",
        "bread-basket",
        "--seeds",
        "1",
        "--algorithms",
        "popularity",
        "--root",
        str(DATASETS),
    ]
    assert main(argv) == 0
    assert "bread-basket" in capsys.readouterr().out


def test_files_are_keyed_like_airec_import(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from airec.recsys.datasets import load_file

    ratings = tmp_path / "ratings.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n10,5,4.0,1\n9,5,5.0,2\n9,12,3.5,3\n10,12,4.5,4\n")
    ds = load_file(ratings, "movielens")
    assert (ds.units, ds.items, ds.kind) == (["10", "9"], ["12", "5"], "ratings")
    assert ds.X.toarray().tolist() == [[1, 1], [0, 1]]
    baskets = tmp_path / "b.csv"
    baskets.write_text("milk, bread\n\ntea\nbread,tea\n")
    ds = load_file(baskets, "baskets")
    assert (ds.units, ds.items, ds.kind) == ([1, 2, 3], ["bread", "milk", "tea"], "baskets")


def test_bench_a_file_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "shop.csv"
    path.write_text(
        "".join(",".join(f"g{b % 3}-{i}" for i in rng.choice(6, 3, replace=False)) + "\n" for b in range(90))
    )
    assert (
        main(
            [
                "--file",
                str(path),
                "--format",
                "baskets",
                "--seeds",
                "1",
                "--seed-offset",
                "7",
                "--algorithms",
                "popularity,itemknn",
                "--min-support",
                "1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "shop.csv  (baskets, 90 units x 18 items, protocol=loo)" in out
    assert "itemknn" in out and "mean over seed 7" in out
