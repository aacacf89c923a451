"""Concurrent clients against real gunicorn workers (SQLite, WAL) while a model trains: every
acknowledged interaction is stored exactly once, nothing unacknowledged is stored, no request fails."""

from __future__ import annotations

import pytest

from airec.benchmarks.ingest import BenchResult, run


def _assert_exact(result: BenchResult, expected_records: int) -> None:
    assert result.errors == 0, result.error_samples
    assert result.records == expected_records
    assert result.interactions >= expected_records  # 1-3 distinct items per record
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0), result.table()


@pytest.mark.gunicorn
def test_concurrent_batches_during_training_lose_and_duplicate_nothing(tmp_path):
    result = run(clients=6, batches=6, records=25, workers=3, train=True, workdir=str(tmp_path))
    _assert_exact(result, 6 * 6 * 25)
    assert result.training.startswith("run ") and "failed" not in result.training, result.training
    table = result.table().splitlines()
    assert table[0].split() == ["clients", "records", "interactions", "seconds", "interactions/s", "errors"]


@pytest.mark.gunicorn
@pytest.mark.slow
def test_heavier_concurrent_ingest_on_sqlite(tmp_path):
    result = run(clients=16, batches=20, records=50, workers=4, train=True, workdir=str(tmp_path))
    _assert_exact(result, 16 * 20 * 50)


def test_the_check_detects_loss_and_duplicates(monkeypatch, tmp_path):
    """The verification itself can fail: drop one stored row and duplicate another, then re-check."""
    from collections import Counter

    import airec.benchmarks.ingest as bench

    real = bench.stored_pairs

    def tampered(url):
        stored = real(url)
        first, second = [pair for pair in stored if pair[0].startswith("bench-")][:2]
        del stored[first]
        stored[second] += 1
        return Counter(stored)

    monkeypatch.setattr(bench, "stored_pairs", tampered)
    result = run(clients=2, batches=2, records=5, workers=1, train=False, workdir=str(tmp_path))
    assert result.lost == 1 and result.duplicated == 1


def test_the_in_process_rows_store_the_same_batches_and_replay_their_sql():
    """airec bench ingest's rows under one client: the service called directly, and its captured SQL
    replayed on a fresh database, which must end with the very rows the service stored."""
    from airec.benchmarks.ingest_floor import measure

    rates = measure(batches=3, records=40, items=30, rounds=2)
    assert set(rates) == {"service", "sql"} and min(rates.values()) > 0
