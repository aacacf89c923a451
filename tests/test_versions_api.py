"""Version API: list, inspect, activate (promote / roll back), archive; bad input answers 4xx JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.synthetic import ingest, planted, recommend, train

MODELS = "/api/v1/models"


@pytest.fixture
def two_versions(client) -> tuple[str, str]:
    records, _ = planted(units=160, seed=1)
    ingest(client, records)
    first = train(client, {"algorithm": "itemknn"})["model_version"]
    second = train(client, {"algorithm": "popularity"})["model_version"]
    assert first != second
    return first, second


@pytest.mark.parametrize(
    "query, field",
    [("status=bogus", "status"), ("limit=0", "limit"), ("limit=1001", "limit"), ("limit=abc", "limit")],
)
def test_a_bad_listing_query_is_a_422_naming_the_field(client, two_versions, query, field):
    before = client.get(MODELS).get_json()
    answer = client.get(f"{MODELS}?{query}")
    assert answer.status_code == 422 and field in str(answer.get_json())
    assert client.get(MODELS).get_json() == before


def test_list_shows_versions_with_status_metrics_and_counts(client, two_versions):
    first, second = two_versions
    body = client.get(MODELS).get_json()
    assert body["active"] == second
    versions = {v["version"]: v for v in body["versions"]}
    assert [v["version"] for v in body["versions"]] == [second, first]  # newest first
    assert versions[second]["status"] == "active" and versions[first]["status"] == "ready"
    assert versions[first]["algorithm"] == "itemknn"
    assert versions[first]["data"]["users"] == 160
    assert versions[first]["data"]["interactions"] > 0
    assert versions[first]["validation"] and versions[first]["evaluation"]["model"]
    assert versions[first]["on_disk"] is True
    only_ready = client.get(MODELS, query_string={"status": "ready"}).get_json()["versions"]
    assert [v["version"] for v in only_ready] == [first]


def test_get_one_version(client, two_versions):
    first, _ = two_versions
    body = client.get(f"{MODELS}/{first}").get_json()
    assert body["version"] == first and body["status"] == "ready"
    missing = client.get(f"{MODELS}/nope")
    assert missing.status_code == 404 and "nope" in missing.get_json()["message"]


def test_rollback_then_promote_switches_serving_and_status(client, two_versions):
    first, second = two_versions
    assert recommend(client, ["g0-i0"])["model_version"] == second
    response = client.post(f"{MODELS}/{first}/activate")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["previous"] == second
    assert response.get_json()["model"]["status"] == "active"
    assert recommend(client, ["g0-i0"])["model_version"] == first
    assert client.get(f"{MODELS}/{second}").get_json()["status"] == "ready"
    assert client.post(f"{MODELS}/{second}/activate").status_code == 200
    assert recommend(client, ["g0-i0"])["model_version"] == second


def test_archive_deletes_files_and_refuses_active(client, two_versions, settings_overrides):
    first, second = two_versions
    active = client.delete(f"{MODELS}/{second}")
    assert active.status_code == 409
    assert "active" in active.get_json()["message"]
    response = client.delete(f"{MODELS}/{first}")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "archived" and response.get_json()["on_disk"] is False
    assert not (Path(settings_overrides["models_dir"]) / first).exists()
    again = client.delete(f"{MODELS}/{first}")
    assert again.status_code == 200  # idempotent
    refused = client.post(f"{MODELS}/{first}/activate")
    assert refused.status_code == 409
    assert "archived" in refused.get_json()["message"]
    assert recommend(client, ["g0-i0"])["model_version"] == second


def test_activate_refuses_a_corrupt_folder_with_422(client, two_versions, settings_overrides):
    first, second = two_versions
    folder = Path(settings_overrides["models_dir"]) / first
    victim = next(p for p in sorted(folder.iterdir()) if p.name != "manifest.json")
    victim.write_bytes(victim.read_bytes()[: max(1, victim.stat().st_size // 2)])
    response = client.post(f"{MODELS}/{first}/activate")
    assert response.status_code == 422
    assert "checksum" in response.get_json()["message"] or "missing" in response.get_json()["message"]
    assert client.get(MODELS).get_json()["active"] == second
    assert client.get(f"{MODELS}/{first}").get_json()["status"] == "failed"
    assert recommend(client, ["g0-i0"])["model_version"] == second


def test_bad_input(client, two_versions):
    for missing in (
        client.post(f"{MODELS}/unknown-version/activate"),
        client.delete(f"{MODELS}/unknown-version"),
    ):
        assert missing.status_code == 404
        assert missing.get_json()["message"] == "No model version 'unknown-version'."
    bad = client.get(MODELS, query_string={"status": "bogus"})
    assert bad.status_code == 422 and "status" in bad.get_json()["message"]
    bad = client.get(MODELS, query_string={"limit": 0})
    assert bad.status_code == 422 and "limit" in bad.get_json()["message"]


def test_keep_versions_prunes_old_folders_but_never_the_active_one(client, settings_overrides):
    from airec.config import Settings
    from airec.training.publish import prune_versions

    records, _ = planted(units=80, seed=2)
    ingest(client, records)
    versions = [train(client, {"algorithm": "popularity"})["model_version"] for _ in range(3)]
    assert client.post(f"{MODELS}/{versions[0]}/activate").status_code == 200
    removed = prune_versions(Settings.from_env({**settings_overrides, "keep_versions": 1}))
    assert versions[0] not in removed and set(removed) == set(versions[1:2])
    listing = {v["version"]: v["status"] for v in client.get(MODELS).get_json()["versions"]}
    assert listing == {versions[0]: "active", versions[1]: "archived", versions[2]: "ready"}


def test_openapi_lists_model_endpoints_with_examples(client):
    spec = client.get("/openapi.json").get_json()
    for path in (MODELS, MODELS + "/{version}", MODELS + "/{version}/activate"):
        assert path in spec["paths"], path
    schema = spec["components"]["schemas"]["ModelVersion"]
    assert schema["properties"]["version"]["example"]
    assert "/metrics" not in spec["paths"]


def test_cli_models_list_and_activate(client, two_versions, settings_overrides, monkeypatch, capsys):
    from airec.cli import main

    first, second = two_versions
    monkeypatch.setenv("AIREC_DATABASE_URL", settings_overrides["database_url"])
    monkeypatch.setenv("AIREC_MODELS_DIR", settings_overrides["models_dir"])
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith(second) and "active" in out[1]
    assert out[2].startswith(first) and "ready" in out[2] and "itemknn" in out[2]
    assert main(["models", "activate", first]) == 0
    assert f"model {first} is active and pinned (was {second})" in capsys.readouterr().out
    assert client.get(MODELS).get_json()["active"] == first
    assert main(["models", "list"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "active (pinned)" in listed[first] and "pinned" not in listed[second]
    assert main(["models", "unpin"]) == 0
    assert f"unpinned {first}" in capsys.readouterr().out
    assert client.get(MODELS).get_json()["pinned"] is None
    assert main(["models", "activate", "no-such-version"]) == 2
    assert "No model version" in capsys.readouterr().err
