"""`airec bench scale` at 1x end to end: synthetic data imported into a fresh PostgreSQL database,
fitted in a child process as a run does, stored, and the database dropped afterwards."""

from __future__ import annotations

import json
import uuid

import pytest

from airec.benchmarks import scale
from tests import marks

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_scale_benchmark_at_1x(tmp_path) -> None:
    marks.require("postgres", "PostgreSQL")
    psycopg2 = pytest.importorskip("psycopg2")
    prefix = f"airec_scale_t{uuid.uuid4().hex[:6]}"
    out = tmp_path / "scale.json"
    argv = ["--sizes", "1x", "--algorithms", "autoencoder", "--epochs", "2", "--json", str(out)]
    assert scale.main([*argv, "--workdir", str(tmp_path), "--database-prefix", prefix]) == 0
    (result,) = json.loads(out.read_text())
    assert result["size"] == "1x" and result["interactions"] == scale.SIZES["1x"].interactions
    assert result["import"]["interactions"] == result["interactions"]
    fit = result["fits"]["autoencoder"]
    assert "error" not in fit, fit
    for stage in ("load_seconds", "total_seconds", "refit_seconds", "store_seconds"):
        assert fit[stage] > 0, stage
    assert fit["epochs"] == 2 and fit["model_bytes"] > 0
    stages = fit["stages"]  # where the run's time went, stage by stage
    assert {"split", "choose", "evaluation", "refit"} <= set(stages)
    assert set(stages["fit_parts"]) == {"network", "linear_path", "linear_weight"}
    assert 0 < stages["fit_parts"]["network"] < stages["choose"] and stages["refit_parts"]["network"] > 0
    assert fit["ndcg@10"] > fit["popularity_ndcg@10"]  # the planted structure is learnt
    admin = psycopg2.connect(dbname="test", host="127.0.0.1", user="postgres")
    with admin.cursor() as cursor:  # the benchmark dropped what it created
        cursor.execute("SELECT count(*) FROM pg_database WHERE datname LIKE %s", (prefix + "%",))
        assert cursor.fetchone()[0] == 0
    admin.close()


def test_database_prefix_is_checked() -> None:
    with pytest.raises(SystemExit):
        scale.main(["--sizes", "1x", "--database-prefix", "x; DROP DATABASE test"])
