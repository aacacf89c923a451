"""`airec bench request` measures in process what the README's request-cost figures say it does."""

from __future__ import annotations

import pytest


def test_the_request_cost_table_separates_healthz_the_request_path_and_the_model():
    """format_table's derived lines are the medians of per-round differences, not differences of
    medians: a round where everything was slow moves both rows of that round alike."""
    from airec.benchmarks.request_cost import ROWS, format_table

    table = format_table({ROWS[0]: [100, 200, 110], ROWS[1]: [900, 1000, 910], ROWS[2]: [250, 330, 262]})
    assert "GET /healthz" in table and "110" in table
    assert "beyond /healthz and the model's scoring: 150 us" in table  # 150, 130, 152 (not 262 - 110)
    assert "the model's scoring inside a request: 650 us" in table  # 650, 670, 648 (not 910 - 262)


@pytest.mark.slow
def test_airec_bench_request_runs_on_ml_latest_small(capsys):
    from airec.benchmarks.request_cost import main
    from airec.recsys.datasets import DEFAULT_ROOT

    if not (DEFAULT_ROOT / "ml-latest-small" / "ratings.csv").is_file():
        pytest.skip("ml-latest-small is not in the shared datasets")
    assert main(["--rounds", "1", "--requests", "5"]) == 0
    out = capsys.readouterr().out
    assert "same, the model's scoring free" in out and "beyond /healthz" in out
