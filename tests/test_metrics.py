"""/metrics: airec_ names, counts per url rule, ingestion, training, active model; sums across workers."""

from __future__ import annotations

import re
import time

import pytest

from tests.gunicorn_helpers import planted_records, serve
from tests.synthetic import ingest, join_training_threads, planted, train

USER_RULE = "/api/v1/users/<string:user>/recommendations"


def sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def test_metrics_count_requests_by_rule_ingestion_training_and_model(client):
    join_training_threads(time.monotonic() + 60)  # no run of another test may finish during this one
    before = client.get("/metrics").get_data(as_text=True)
    records, _ = planted(units=60, seed=4)
    ingest(client, records)
    run = train(client, {"algorithm": "itemknn"})
    for user in ("u1", "u2", "u3"):
        assert client.get(f"/api/v1/users/{user}/recommendations").status_code == 200
    assert client.get("/api/v1/users/nobody/recommendations").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.get_data(as_text=True)

    def delta(name: str, **labels: str) -> float:
        return sample(text, name, **labels) - sample(before, name, **labels)

    assert delta("airec_requests_total", endpoint=USER_RULE, status="200", method="GET") == 3
    assert delta("airec_requests_total", endpoint=USER_RULE, status="404") == 1
    assert "/api/v1/users/u1" not in text  # labelled by rule, never by raw path
    assert delta("airec_request_duration_seconds_count", endpoint=USER_RULE) == 4
    assert delta("airec_ingested_interactions_total") == sum(len(r["items"]) for r in records)
    assert delta("airec_ingested_records_total") == len(records)
    assert delta("airec_training_runs_total", status="succeeded") == 1
    assert delta("airec_training_duration_seconds_count", status="succeeded") == 1
    assert sample(text, "airec_active_model_info", version=run["model_version"], algorithm="itemknn") == 1
    assert 0 <= sample(text, "airec_active_model_age_seconds") < 60
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    ours = {n for n in names if n.startswith("airec_")}
    assert {"airec_requests_total", "airec_active_model_info"} <= ours


def test_metrics_without_model_has_no_version_sample(client):
    text = client.get("/metrics").get_data(as_text=True)
    assert "airec_active_model_info{" not in text
    assert "# TYPE airec_active_model_age_seconds gauge" in text


@pytest.mark.gunicorn
def test_metrics_add_up_across_gunicorn_workers(tmp_path):
    with serve(tmp_path, workers=3) as server:
        response = server.post("/api/v1/interactions", json={"records": planted_records(users=40)})
        assert response.status_code == 201, response.text
        for i in range(40):
            assert server.get(f"/api/v1/users/u{i}/recommendations").status_code == 200
        for _ in range(6):  # scraped on whichever worker answers: the same sums every time
            text = server.get("/metrics").text
            assert sample(text, "airec_requests_total", endpoint=USER_RULE, status="200") == 40
            assert sample(text, "airec_ingested_interactions_total") == 160
