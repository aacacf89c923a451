"""`airec bench service` on synthetic data with planted structure, through the real gunicorn service:
it measures the trained service, it can fail (a popularity-only service comes out below the
baselines), and the in-process engine fits exactly what the service fits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from airec.benchmarks import quality


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory) -> Path:
    """u.data-style ratings: 240 users, each liking 6-10 of the 12 items of one of 8 taste groups,
    plus a few items from anywhere; ratings >= 4 are the positives."""
    rng = np.random.default_rng(11)
    lines = []
    for user in range(240):
        group = user % 8
        liked = rng.choice(12, size=int(rng.integers(6, 11)), replace=False) + group * 12
        noise = rng.choice(96, size=2, replace=False)
        for item in [*liked, *noise]:
            lines.append(f"{user + 1}\t{item + 1}\t5\t0")
        for item in rng.choice(96, size=3, replace=False):
            lines.append(f"{user + 1}\t{item + 1}\t1\t0")  # disliked: not a positive
    path = tmp_path_factory.mktemp("bench") / "planted.data"
    path.write_text("\n".join(lines) + "\n")
    return path


def run(path: Path, tmp_path: Path, *extra: str) -> dict:
    out = tmp_path / "result.json"
    assert (
        quality.main(
            ["--file", str(path), "--format", "movielens", "--seeds", "1", "--json", str(out), *extra]
        )
        == 0
    )
    return json.loads(out.read_text())["planted.data"]["shapes"]["user"]


@pytest.mark.gunicorn
def test_the_trained_service_is_measured_against_the_baselines(ratings_file, tmp_path, capsys):
    result = run(ratings_file, tmp_path)
    printed = capsys.readouterr().out
    assert "planted.data [user]" in printed and "service / ease:" in printed
    rows = result["rows"]
    assert result["protocol"] == "strong" and result["algorithms"] == ["autoencoder"]
    assert result["refit"][0]["units"] == 204  # every unit but the 36 held out
    assert rows["service"]["ndcg@100"] > 1.3 * rows["popularity"]["ndcg@100"]
    assert result["ratios"]["ease"] > 0.9 and result["ratios"]["itemknn"] > 0.9
    assert rows["service"]["train_s"] > 0 and rows["service"]["peak_rss_mb"] > 50
    assert result["params"]["ease"][0] in (50.0, 200.0, 500.0, 1000.0)

    direct = run(ratings_file, tmp_path, "--engine", "direct")
    assert direct["rows"]["service"]["ndcg@100"] == pytest.approx(rows["service"]["ndcg@100"], abs=1e-9)
    assert direct["rows"]["service"]["recall@20"] == pytest.approx(rows["service"]["recall@20"], abs=1e-9)


@pytest.mark.gunicorn
def test_a_service_that_only_knows_popularity_comes_out_below_the_baselines(ratings_file, tmp_path):
    result = run(ratings_file, tmp_path, "--env", "AIREC_ALGORITHM=popularity")
    assert result["algorithms"] == ["popularity"]
    assert result["ratios"]["ease"] < 1.0 and result["ratios"]["itemknn"] < 1.0
    service, popularity = result["rows"]["service"], result["rows"]["popularity"]
    assert service["ndcg@100"] == pytest.approx(popularity["ndcg@100"], rel=0.02)  # ties break otherwise


def test_settings_for_the_service_must_be_airec_ones(ratings_file):
    with pytest.raises(SystemExit):
        quality.main(["--file", str(ratings_file), "--env", "PATH=/tmp"])


def test_a_user_with_more_items_than_a_record_takes_is_sent_as_several_records():
    from types import SimpleNamespace

    import scipy.sparse as sp

    from airec.benchmarks.quality_http import records
    from airec.config import Settings

    cap = Settings.max_items_per_record
    X = sp.csr_matrix(np.ones((2, 2 * cap + 5), dtype=np.float32))
    ds = SimpleNamespace(kind="ratings", units=["u1", "u2"], items=[f"i{j}" for j in range(X.shape[1])])
    sent = records(ds, SimpleNamespace(X=X, received=np.array([1])), "user")
    assert [len(r["items"]) for r in sent] == [cap, cap, 5] and {r["user"] for r in sent} == {"u2"}
    assert [i for r in sent for i in r["items"]] == ds.items


def test_peak_memory_counts_a_child_of_a_thread_that_still_runs():
    """A fit's process is started by the run's training thread, which lives until the fit ends."""
    import os
    import subprocess
    import sys
    import threading

    from airec.benchmarks.quality_http import _tree_rss_mb

    code = "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); print(1, flush=True); input()"
    started, done = [], threading.Event()

    def training_thread() -> None:
        started.append(
            subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        )
        done.wait(60)

    thread = threading.Thread(target=training_thread)
    thread.start()
    try:
        while not started:
            done.wait(0.05)
        started[0].stdout.readline()  # its 300 MB are touched
        assert _tree_rss_mb(os.getpid()) >= _tree_rss_mb(started[0].pid) + 10 >= 260
    finally:
        done.set()
        thread.join()
        started[0].kill()
        started[0].wait()


def test_held_out_units_send_no_more_items_than_a_request_takes():
    """A held-out user with more items than the service takes in one request (a 422 otherwise) shows
    its last ones, to the service and to the baselines alike."""
    import scipy.sparse as sp

    from airec.recsys.holdout import last_items

    X = sp.csr_matrix(np.array([[1, 1, 1, 1, 1], [0, 1, 0, 1, 0]], dtype=np.float32))
    capped = last_items(X, 3)
    assert capped[0].indices.tolist() == [2, 3, 4] and capped[1].indices.tolist() == [1, 3]
    assert quality.request_items_cap() == 500
