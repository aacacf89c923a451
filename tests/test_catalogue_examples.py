"""The curl examples of the README's "Item catalogue" and "Filtering recommendations" sections, read from
README.md itself and run as they stand (with $AIREC the server's address and $KEY an admin key) against
real gunicorn with API keys on: each must exit 0 and print what the `# -> ` line under it shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from airec.benchmarks.load_inputs import make_keys
from airec.catalogue.masks import POLL_SECONDS
from tests.gunicorn_helpers import planted_records, serve, versions_seen, wait_until

README = Path(__file__).resolve().parents[1] / "README.md"
SECTIONS = ("## Item catalogue", "## Filtering recommendations")


def section(text: str, heading: str) -> str:
    start = text.index(f"\n{heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def examples(text: str, heading: str) -> list[tuple[str, dict]]:
    """(command, expected fields) for each example in the section's ```sh blocks: the lines of a
    command (comments and backslash continuations included), then `# -> ` and a JSON object."""
    out = []
    for block in section_blocks(section(text, heading)):
        command: list[str] = []
        for line in block.splitlines():
            if line.startswith("# -> "):
                joined = "\n".join(command)
                assert joined.count("curl ") == 1, f"{heading}: one curl per '# -> ' line: {joined}"
                out.append((joined, json.loads(line[5:])))
                command = []
            elif line.strip():
                command.append(line)
        assert not command, f"{heading}: lines with no '# -> ' answer under them: {command}"
    return out


def section_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, flags=re.M | re.S)


def test_the_examples_are_read_from_the_readme():
    text = README.read_text()
    found = {heading: examples(text, heading) for heading in SECTIONS}
    assert len(found["## Item catalogue"]) >= 4 and len(found["## Filtering recommendations"]) >= 3
    for command, expected in [pair for pairs in found.values() for pair in pairs]:
        assert "curl" in command and '"$AIREC/' in command and "$KEY" in command
        assert expected
    lost = text.replace('# -> {"created": 2', '# {"created": 2')  # an answer line lost mid-block
    with pytest.raises(AssertionError, match="one curl per"):
        examples(lost, "## Item catalogue")
    last = found["## Filtering recommendations"][-1]
    dangling = text.replace("# -> " + json.dumps(last[1]), "")  # the block's last answer line lost
    with pytest.raises(AssertionError, match="no '# -> ' answer"):
        examples(dangling, "## Filtering recommendations")


def wait_run(url: str, auth: dict, run_id: int, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = requests.get(f"{url}/api/v1/training/runs/{run_id}", headers=auth, timeout=30).json()["run"]
        if run["status"] in ("succeeded", "failed"):
            return run
        time.sleep(0.2)
    raise TimeoutError(f"run {run_id} not finished after {timeout}s")


@pytest.mark.gunicorn
def test_the_readme_examples_run_against_a_live_server(tmp_path):
    text = README.read_text()
    (tmp_path / "server").mkdir()
    keys = make_keys(f"sqlite:///{tmp_path / 'server' / 'airec.db'}")
    auth = {"Authorization": f"Bearer {keys['admin']}"}
    with serve(tmp_path, workers=2, env={"AIREC_ACTIVATE": "always", "AIREC_AUTH": "on"}) as server:
        records = planted_records(users=300)
        stored = requests.post(f"{server.url}/api/v1/interactions", json={"records": records}, headers=auth)
        assert stored.status_code == 201, stored.text
        started = requests.post(f"{server.url}/api/v1/training", json={"algorithm": "itemknn"}, headers=auth)
        run = wait_run(server.url, auth, started.json()["run"]["id"])
        assert run["status"] == "succeeded"
        wait_until(lambda: set(versions_seen(server, 12, auth)) == {run["model_version"]}, timeout=15)
        for heading in SECTIONS:
            for command, expected in examples(text, heading):
                done = subprocess.run(
                    ["bash", "-c", "set -o pipefail\n" + command],
                    env={**os.environ, "AIREC": server.url, "KEY": keys["admin"]},
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                assert done.returncode == 0, (command, done.stderr)
                answer = json.loads(done.stdout)
                assert {key: answer.get(key) for key in expected} == expected, (command, answer)
                if re.search(r"-X (POST|PUT|PATCH|DELETE) \S*/api/v1/items", command):
                    time.sleep(POLL_SECONDS + 0.2)  # every worker sees a catalogue change within this
        unauthorised = requests.get(f"{server.url}/api/v1/items/g1-i3", timeout=30)
        assert unauthorised.status_code == 401  # the examples' key is what let them in
