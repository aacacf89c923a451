"""The `airec` command in-process: import, train, evaluate, and how it reports errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airec.cli import main
from tests.synthetic import planted


@pytest.fixture
def env(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("AIREC_DATABASE_URL", f"sqlite:///{tmp_path}/cli.db")
    monkeypatch.setenv("AIREC_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("AIREC_SCHEDULER", "false")
    monkeypatch.setenv("AIREC_LOG_LEVEL", "WARNING")
    return tmp_path


def movielens_file(folder: Path, units: int = 120) -> tuple[Path, int, int]:
    """u.data rows: planted groups rated 4-5, plus one disliked (rated 2) item per user."""
    records, group_of = planted(units=units, noise=0.0)
    numbers = {name: n + 1 for n, name in enumerate(sorted(group_of))}
    lines, liked = [], 0
    for user, record in enumerate(records, start=1):
        for i, name in enumerate(record["items"]):
            lines.append(f"{user}\t{numbers[name]}\t{4 + i % 2}\t{880000000 + i}")
            liked += 1
        lines.append(f"{user}\t{len(numbers) + 1}\t2\t880000100")
    path = folder / "u.data"
    path.write_text("\n".join(lines) + "\n")
    return path, liked, len(records)


def test_import_train_evaluate(env, capsys):
    path, liked, users = movielens_file(env)
    assert main(["import", str(path), "--format", "movielens", "--min-rating", "4"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["interactions"] == liked
    assert result["skipped"] == users  # one rating of 2 per user
    assert result["records"] == users

    assert main(["train", "--algorithm", "itemknn"]) == 0
    out = capsys.readouterr().out
    assert "run 1 succeeded: model " in out and "(itemknn)" in out
    assert "held-out units" in out
    model_row = next(line for line in out.splitlines() if line.startswith("hit_rate@10"))
    model_hr, popularity_hr = (float(x) for x in model_row.split()[1:3])
    assert model_hr > popularity_hr
    assert len(list((env / "models").iterdir())) == 1

    assert main(["evaluate", "--k", "10"]) == 0
    out = capsys.readouterr().out
    assert "(itemknn)" in out and "held-out units" in out
    row = next(line for line in out.splitlines() if line.startswith("hit_rate@10"))
    assert [float(x) for x in row.split()[1:3]] == pytest.approx([model_hr, popularity_hr], abs=1e-4)


def test_train_with_params_and_warm_start_flag(env, capsys):
    path, _, _ = movielens_file(env, units=60)
    assert main(["import", str(path), "--format", "movielens"]) == 0
    params = json.dumps({"epochs": 3, "hidden": 16, "latent": 4})
    assert main(["train", "--algorithm", "autoencoder", "--params", params]) == 0
    assert main(["train", "--algorithm", "autoencoder", "--params", params, "--warm-start"]) == 0
    out = capsys.readouterr().out
    assert "run 2 succeeded" in out and "(autoencoder)" in out


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["evaluate"], 2, "no model is active yet"),
        (["train", "--algorithm", "itemknn"], 1, "not enough data"),
        (["train", "--algorithm", "nope"], 2, "unknown algorithm"),
        (["train", "--params", "{oops"], 2, "error:"),
        (["train", "--params", "[1, 2]"], 2, "JSON object"),
        (["train", "--algorithm", "itemknn", "--params", '{"epochs": 3}'], 2, "unknown parameter"),
        (["import", "/nonexistent/u.data", "--format", "movielens"], 2, "error:"),
    ],
)
def test_errors_exit_non_zero_with_a_message(env, capsys, argv, code, message):
    assert main(argv) == code
    assert message in capsys.readouterr().err


def test_bad_line_in_import_names_the_line(env, capsys):
    path = env / "u.data"
    path.write_text("1\t10\t5\t880000000\n2\tten\n")
    assert main(["import", str(path), "--format", "movielens"]) == 2
    assert ":2" in capsys.readouterr().err


def test_bad_environment_is_a_clear_error(env, monkeypatch, capsys):
    monkeypatch.setenv("AIREC_TRAIN_EPOCHS", "lots")
    assert main(["evaluate"]) == 2
    assert "error: AIREC_TRAIN_EPOCHS='lots'" in capsys.readouterr().err
    monkeypatch.delenv("AIREC_TRAIN_EPOCHS")
    monkeypatch.setenv("AIREC_PORT", "eighty")
    with pytest.raises(SystemExit) as caught:
        main(["serve"])
    assert caught.value.code == 2
    assert "eighty" in capsys.readouterr().err


def test_usage_errors_exit_2(env, capsys):
    with pytest.raises(SystemExit) as caught:
        main(["import", "x.csv"])  # --format is required
    assert caught.value.code == 2
    assert "--format" in capsys.readouterr().err
