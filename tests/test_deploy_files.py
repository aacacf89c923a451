"""deploy/compose.yaml and deploy/nginx.conf, checked as far as this machine can without a Docker
engine: the file parses, every service has a health check, and the processes share only the database."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from airec.cli import build_parser
from airec.config import Settings

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_postgresql_one_worker_two_web_replicas_and_a_proxy_all_with_health_checks():
    services = compose()["services"]
    assert set(services) == {"db", "worker", "web-1", "web-2", "proxy"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert services["worker"]["entrypoint"] == ["airec", "worker"]
    build_parser().parse_args(services["worker"]["entrypoint"][1:])  # a real command of the CLI
    assert services["proxy"]["depends_on"] == {
        "web-1": {"condition": "service_healthy"},
        "web-2": {"condition": "service_healthy"},
    }


def test_airec_processes_share_the_database_and_nothing_on_disk():
    doc = compose()
    services = {k: v for k, v in doc["services"].items() if k in ("worker", "web-1", "web-2")}
    urls, volumes = set(), []
    for name, service in services.items():
        env = service["environment"]
        assert env["AIREC_TRAINER"] == "worker" and env["AIREC_MODEL_STORE"] == "database", name
        urls.add(env["AIREC_DATABASE_URL"])
        (mount,) = service["volumes"]
        volume, target = mount.split(":")[:2]
        assert target == env["AIREC_MODELS_DIR"], name
        volumes.append(volume)
        Settings.from_env({"trainer": env["AIREC_TRAINER"], "model_store": env["AIREC_MODEL_STORE"]})
    assert len(urls) == 1 and "@db:5432/" in urls.pop()
    assert len(set(volumes)) == 3  # one models volume each
    assert set(volumes) | {"pgdata"} == set(doc["volumes"])


def test_the_proxy_balances_over_both_web_replicas():
    conf = (DEPLOY / "nginx.conf").read_text()
    assert set(re.findall(r"server (web-\d):8000", conf)) == {"web-1", "web-2"}
    assert "proxy_pass http://airec;" in conf


def test_the_web_replicas_trust_exactly_the_one_proxy_in_front_of_them():
    services = compose()["services"]
    for name in ("web-1", "web-2"):
        env = services[name]["environment"]
        assert Settings.from_env({"trusted_proxies": int(env["AIREC_TRUSTED_PROXIES"])}).trusted_proxies == 1
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in (DEPLOY / "nginx.conf").read_text()
