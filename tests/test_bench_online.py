"""`airec bench online` on a small time-split dataset with planted groups, through the real gunicorn
service: an A/B experiment between popularity and the autoencoder, whose table comes from the
service's own experiment results, and in which the model that learns the groups wins significantly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airec.benchmarks import online
from tests.synthetic import timed_planted_ratings


@pytest.fixture(scope="module")
def ratings(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("online") / "ratings.csv"
    timed_planted_ratings(path)
    return path


@pytest.mark.gunicorn
def test_the_planted_model_beats_popularity_in_an_online_experiment(ratings, tmp_path, capsys):
    out = tmp_path / "online.json"
    args = ["--file", str(ratings), "--earlier", "0.5", "--rounds", "8", "--json", str(out)]
    assert online.main(args) == 0
    result = json.loads(out.read_text())
    experiment, simulated = result["experiment"], result["simulated"]
    assert [v["name"] for v in experiment["variants"]] == ["popularity", "autoencoder"]
    assert experiment["status"] == "stopped" and result["users"] == 320
    for variant in experiment["variants"]:
        assert "-popularity-" in variant["model_version"] or variant["name"] == "autoencoder"
        assert variant["impressions"] >= 1000  # enough for a verdict
        # Every answer's impression and every take the simulated users sent is counted by the service.
        assert variant["impressions"] == simulated[variant["name"]]["impressions"]
        assert variant["takes"] == simulated[variant["name"]]["takes"]
        low, high = variant["interval"]
        assert low <= variant["take_rate"] <= high
    popularity, autoencoder = experiment["variants"]
    assert "-autoencoder-" in autoencoder["model_version"]
    assert autoencoder["take_rate"] > 2 * popularity["take_rate"]
    (difference,) = experiment["difference"]
    assert difference["variant"] == "autoencoder" and difference["significant"]
    assert difference["interval"][0] > 0
    assert experiment["verdict"] == "autoencoder is better" and experiment["winner"] == "autoencoder"
    printed = capsys.readouterr().out
    assert "| variant | model version | impressions | takes | take rate | 95% interval |" in printed
    assert "| popularity |" in printed and "| autoencoder |" in printed
    assert "verdict: autoencoder is better" in printed


def test_the_split_is_by_time_and_a_user_s_later_items_are_new_to_them():
    rows = [("a", "x", 3.0), ("a", "y", 1.0), ("b", "x", 2.0), ("a", "x", 4.0), ("b", "z", 5.0)]
    replay = online.split_by_time(rows, 0.5)
    assert replay.earlier == {"a": ["y"], "b": ["x"]}
    assert replay.later == {"a": ["x"], "b": ["z"]}  # a's second 'x' is not a second later item
    assert replay.cut == 3.0
    assert online.training_records(replay) == [{"user": "a", "items": ["y"]}, {"user": "b", "items": ["x"]}]


@pytest.mark.parametrize(
    "bad", [["--earlier", "1.5"], ["--earlier", "0"], ["--rounds", "0"], ["--k", "0"], ["--env", "PATH=/x"]]
)
def test_bad_options_are_refused_before_anything_starts(ratings, bad, capsys):
    with pytest.raises(SystemExit) as exit_:
        online.main(["--file", str(ratings), *bad])
    assert exit_.value.code == 2
    assert "airec bench online: error:" in capsys.readouterr().err


def test_a_file_without_timestamps_is_refused_naming_it(tmp_path, capsys):
    path = tmp_path / "u.data"
    path.write_text("1\t2\t5\n")
    with pytest.raises(SystemExit):
        online.main(["--file", str(path)])
    assert "without a timestamp" in capsys.readouterr().err
