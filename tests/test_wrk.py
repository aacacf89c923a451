"""The load generator's plumbing: wrk's Lua summary is read back, keys and bodies are sent."""

from __future__ import annotations

import shutil

import pytest

from airec.benchmarks.wrk import run_wrk, trivial_server

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is missing: apt-get install wrk")


def test_wrk_against_the_trivial_endpoint_reports_requests_and_latency():
    with trivial_server() as url:
        load = run_wrk(url, seconds=1, connections=2, threads=1)
    assert load.requests > 0 and load.errors == 0
    assert load.rps > 0 and 0 < load.p50 <= load.p99


@pytest.mark.gunicorn
def test_wrk_sends_the_key_and_the_bodies(tmp_path):
    """Against the real app on gunicorn: a POST with a read key and a JSON body is answered 200."""
    from airec.benchmarks.load_inputs import make_keys, write_bodies
    from airec.benchmarks.server import Gunicorn

    url = f"sqlite:///{tmp_path}/w.db"
    keys = make_keys(url)
    bodies = write_bodies(tmp_path / "b.txt", [["a", "b"], ["c"]], k=3)
    with Gunicorn(tmp_path, workers=1, database_url=url, env={"AIREC_AUTH": "on"}) as server:
        ok = run_wrk(
            server.url + "/api/v1/recommendations",
            seconds=1,
            connections=1,
            threads=1,
            key=keys["read"],
            method="POST",
            bodies=bodies,
            pids=server.worker_pids(),
        )
        refused = run_wrk(
            server.url + "/api/v1/recommendations",
            seconds=1,
            connections=1,
            threads=1,
            method="POST",
            bodies=bodies,
        )
    assert ok.requests > 0 and ok.errors == 0 and ok.cpu_us is not None and ok.cpu_us > 0
    assert refused.requests > 0 and refused.errors == refused.requests  # 401 without the key
