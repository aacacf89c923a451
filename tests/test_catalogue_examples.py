"""The curl examples of the README's "Item catalogue" and "Filtering recommendations" sections, run
verbatim (with $AIREC pointing at it) against real gunicorn: each must exit 0 and print what the
comment under it says it prints."""

from __future__ import annotations

import json
import os
import subprocess

from tests.gunicorn_helpers import planted_records, serve

#: The examples as the README shows them: a `curl` command (continued with backslashes), then
#: `# -> ` and a JSON object whose keys and values the answer must contain.
EXAMPLES = r"""
curl -s -X PUT "$AIREC/api/v1/items/g1-i3" -H 'Content-Type: application/json' \
  -d '{"categories": ["shoes", "shoes/running"], "labels": ["brand:acme", "sale"],
       "properties": {"title": "Trail runner"}}'
# -> {"item": "g1-i3", "categories": ["shoes", "shoes/running"], "visible": true, "hidden_reason": null}

curl -s -X PATCH "$AIREC/api/v1/items/g1-i3" -H 'Content-Type: application/json' -d '{"hidden": true}'
# -> {"hidden": true, "visible": false, "hidden_reason": "hidden", "labels": ["brand:acme", "sale"]}

curl -s -X POST "$AIREC/api/v1/items" -H 'Content-Type: application/json' \
  -d '{"items": [{"item": "g1-i3", "categories": ["shoes/running"]},
                 {"item": "g1-i4", "categories": ["shoes"], "labels": ["sale"]},
                 {"item": "g1-i5", "available_from": "2999-01-01T00:00:00Z"}]}'
# -> {"created": 2, "updated": 1}

curl -s "$AIREC/api/v1/items/g1-i5"
# -> {"visible": false, "hidden_reason": "not_yet_available", "count": 14}

curl -s "$AIREC/api/v1/items?category=shoes&label=sale" | jq -c '{items: [.[].item]}'
# -> {"items": ["g1-i4"]}

curl -s -X POST "$AIREC/api/v1/recommendations" -H 'Content-Type: application/json' \
  -d '{"items": ["g1-i0", "g1-i1"], "k": 3, "categories": ["shoes"]}' \
  | jq -c '{items: ([.items[].item] | sort), filtered}'
# -> {"items": ["g1-i3", "g1-i4"], "filtered": 76}

curl -s "$AIREC/api/v1/users/u2/recommendations?k=3&labels=sale" | jq -c '{items: [.items[].item]}'
# -> {"items": ["g1-i4"]}

curl -s "$AIREC/api/v1/items/g1-i0/similar?k=3&exclude_labels=sale&categories=shoes" \
  | jq -c '{items: [.items[].item]}'
# -> {"items": ["g1-i3"]}
"""


def examples() -> list[tuple[str, dict]]:
    out, command = [], []
    for line in EXAMPLES.strip().splitlines():
        if line.startswith("# -> "):
            out.append(("\n".join(command), json.loads(line[5:])))
            command = []
        elif line.strip():
            command.append(line)
    return out


def test_the_readme_examples_run_against_a_live_server(tmp_path):
    with serve(tmp_path, workers=2, env={"AIREC_ACTIVATE": "always"}) as server:
        records = planted_records(users=300)
        assert server.post("/api/v1/interactions", json={"records": records}).status_code == 201
        run = server.post("/api/v1/training", json={"algorithm": "itemknn"}).json()["run"]
        assert server.wait_run(run["id"])["status"] == "succeeded"
        for command, expected in examples():
            done = subprocess.run(
                ["bash", "-c", command],
                env={**os.environ, "AIREC": server.url},
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert done.returncode == 0, (command, done.stderr)
            answer = json.loads(done.stdout)
            assert {key: answer.get(key) for key in expected} == expected, (command, answer)
