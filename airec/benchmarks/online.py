"""`airec bench online`: an A/B experiment between a popularity model and the autoencoder, replayed on
a rating file split by time, through the real service (gunicorn, API keys on, a fresh database).

The earlier part (by timestamp) is POSTed and both models are trained on it (`{"algorithm":
"popularity"}` and the default request `{}`); an experiment splits the users of the later part between
them. Each later user is replayed in rounds: at round s they ask `POST /api/v1/recommendations` with
their history (their earlier items, their first s later items and what they took) and `user`; they
take the best-placed recommended item that is among their later items not yet taken, which is POSTed
as an interaction with the answer's `recommendation_id`. The table is the service's own
`GET /api/v1/experiments/<name>`: impressions, takes, take rate with its interval per variant, the
difference and the verdict. Only the simulated user knows the later part; the models never see it.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import requests

from airec.auth.roles import KEY_ROLES, Role
from airec.benchmarks.quality_http import caller, cli, train_run
from airec.benchmarks.server import Gunicorn
from airec.config import Settings
from airec.recsys.datasets import DEFAULT_ROOT, MIN_RATING, read_timed_ratings

#: Impressions are written off the request path within a second (airec.feedback.queue): a take is
#: sent once its impression is stored, whichever worker answered.
FLUSH_WAIT = 1.3
CLIENTS = 4
EXPERIMENT = "bench-online"
VARIANTS = ("popularity", "autoencoder")  # the first is the baseline


@dataclass
class Replay:
    """The time split: each user's items before and after the cut, oldest first."""

    earlier: dict[str, list[str]]
    later: dict[str, list[str]]
    cut: float  # the first later timestamp


@dataclass
class Session:
    """One simulated user of the later part."""

    user: str
    history: list[str]
    later: list[str]
    taken: set[str] = field(default_factory=set)

    def reveal(self, step: int) -> None:
        """The user's own later item before round `step` joins their history (no recommendation)."""
        item = self.later[step - 1]
        if item not in self.history:
            self.history.append(item)

    def pick(self, shown: list[str]) -> str | None:
        """The best-placed shown item among the user's later items not yet taken (None: no take)."""
        wanted = set(self.later) - self.taken
        return next((item for item in shown if item in wanted), None)


def split_by_time(rows: Sequence[tuple[str, str, float]], fraction: float) -> Replay:
    """The first `fraction` of the events by time (ties kept in file order) is the earlier part."""
    if not 0 < fraction < 1:
        raise ValueError(f"the earlier fraction must be between 0 and 1, got {fraction}")
    ordered = sorted(rows, key=lambda row: row[2])
    cut = min(max(int(len(ordered) * fraction), 1), len(ordered) - 1)
    earlier: dict[str, list[str]] = {}
    later: dict[str, list[str]] = {}
    for position, (user, item, _) in enumerate(ordered):
        part = earlier if position < cut else later
        part.setdefault(user, [])
        if item not in part[user] and item not in earlier.get(user, ()):
            part[user].append(item)
    later = {user: items for user, items in later.items() if items}
    return Replay(earlier, later, ordered[cut][2])


def training_records(replay: Replay) -> list[dict]:
    """The earlier part as API records, a long history as several records (AIREC_MAX_ITEMS_PER_RECORD)."""
    cap = Settings.max_items_per_record
    return [
        {"user": user, "items": items[i : i + cap]}
        for user, items in replay.earlier.items()
        for i in range(0, len(items), cap)
    ]


def _keys(env: dict[str, str]) -> dict[str, str]:
    """A key per role; the first alone (it migrates the fresh database), the others at once."""
    first, *others = KEY_ROLES
    keys = {first: cli(env, "keys", "create", "--role", first, "--name", first)}
    with ThreadPoolExecutor(len(others)) as pool:
        made = pool.map(lambda role: cli(env, "keys", "create", "--role", role, "--name", role), others)
        keys.update(zip(others, made, strict=True))
    return keys


def _asker(url: str, key: str, k: int, max_history: int) -> Callable[[Session], tuple[str, list[str], str]]:
    """ask(session) -> (recommendation_id, items shown, variant). An answer from outside the experiment
    (a worker that has not yet loaded it: workers follow within a model poll) is asked again."""
    local = threading.local()

    def ask(session: Session) -> tuple[str, list[str], str]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        body = {"items": session.history[-max_history:], "k": k, "user": session.user}
        deadline = time.monotonic() + 60
        while True:
            response = local.session.post(
                url + "/api/v1/recommendations",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            if response.status_code != 200:
                raise RuntimeError(f"recommendations: {response.status_code} {response.text[:300]}")
            answer = response.json()
            if answer["variant"] is not None:
                return answer["recommendation_id"], [e["item"] for e in answer["items"]], answer["variant"]
            if time.monotonic() > deadline:
                raise RuntimeError("a worker still serves outside the experiment after 60 s")
            time.sleep(0.1)

    return ask


def simulate(sessions: list[Session], ask: Callable, send: Callable[[list[dict]], None], rounds: int) -> dict:
    """Replay every session for up to `rounds` rounds; returns what the simulation itself counted per
    variant (impressions, takes sent), to check the service's counts against. A round's takes are
    sent while the next round asks, once that round's impressions are stored (FLUSH_WAIT)."""
    counted = {name: {"impressions": 0, "takes": 0} for name in VARIANTS}
    pending: tuple[float, list[dict]] | None = None
    with ThreadPoolExecutor(CLIENTS) as pool:
        for step in range(rounds):
            active = [s for s in sessions if step < len(s.later) and set(s.later) - s.taken]
            if not active:
                break
            for session in active:
                if step:
                    session.reveal(step)
            takes = []
            for session, (rid, shown, variant) in zip(active, pool.map(ask, active), strict=True):
                counted[variant]["impressions"] += 1
                item = session.pick(shown)
                if item is not None:
                    session.taken.add(item)
                    session.history.append(item)
                    counted[variant]["takes"] += 1
                    takes.append({"user": session.user, "items": [item], "recommendation_id": rid})
            if pending is not None:
                _send_when_stored(*pending, send)
            pending = (time.monotonic(), takes)
    if pending is not None:
        _send_when_stored(*pending, send)
    return counted


def _send_when_stored(answered: float, takes: list[dict], send: Callable[[list[dict]], None]) -> None:
    """Send takes once the impressions they name are stored, whichever worker answered them."""
    time.sleep(max(0.0, answered + FLUSH_WAIT - time.monotonic()))
    if takes:
        send(takes)


def run(replay: Replay, *, rounds: int, k: int, workers: int, env: dict, log: Callable[[str], None]) -> dict:
    """The whole experiment through a fresh service; returns its results and the simulation's counts."""
    with tempfile.TemporaryDirectory(prefix="airec-bench-online-") as tmp:
        started = time.perf_counter()
        service_env = {
            **os.environ,
            "AIREC_DATABASE_URL": f"sqlite:///{tmp}/airec.db",
            "AIREC_MODELS_DIR": f"{tmp}/models",
            "AIREC_LOG_LEVEL": "WARNING",
            **env,
        }
        keys = _keys(service_env)
        server_env = {"AIREC_AUTH": "true", "AIREC_IMPRESSIONS": "on", **env}
        database = service_env["AIREC_DATABASE_URL"]
        with Gunicorn(
            tmp, workers=workers, env=server_env, database_url=database, startup_timeout=120
        ) as server:
            call = caller(server.url, keys)
            body = training_records(replay)
            for start in range(0, len(body), 5000):
                chunk = body[start : start + 5000]
                call("POST", "/api/v1/interactions", Role.INGEST, json={"records": chunk})
            log(f"    service up, {len(body)} records posted in {time.perf_counter() - started:.0f} s")
            variants = _train_variants(call, server.process.pid, log)
            call("POST", "/api/v1/experiments", Role.ADMIN, json={"name": EXPERIMENT, "variants": variants})
            sessions = [
                Session(u, list(replay.earlier.get(u, [])), items) for u, items in replay.later.items()
            ]
            max_history = int(env.get("AIREC_MAX_HISTORY", Settings.max_history))
            ask = _asker(server.url, keys[Role.READ], k, max_history)

            def send(takes: list[dict]) -> None:
                call("POST", "/api/v1/interactions", Role.INGEST, json={"records": takes})

            started = time.perf_counter()
            counted = simulate(sessions, ask, send, rounds)
            log(f"    replayed {len(sessions)} users in {time.perf_counter() - started:.0f} s")
            results = call("POST", f"/api/v1/experiments/{EXPERIMENT}/stop", Role.ADMIN).json()
    return {"experiment": results, "simulated": counted, "users": len(sessions)}


def _train_variants(
    call: Callable[..., requests.Response], pid: int, log: Callable[[str], None]
) -> list[dict]:
    """Train popularity, then the default request `{}` (the autoencoder): the experiment's variants."""
    variants = []
    for name, request in zip(VARIANTS, ({"algorithm": "popularity"}, {}), strict=True):
        trained, seconds, _ = train_run(call, pid, request)
        variants.append({"name": name, "model_version": trained["model_version"], "weight": 50})
        log(f"    trained {name}: {trained['model_version']} in {seconds:.0f} s")
    return variants


def table(results: dict) -> str:
    """The experiment's answer as a Markdown table, its difference and verdict below."""
    lines = [
        "| variant | model version | impressions | takes | take rate | 95% interval |",
        "|---|---|---:|---:|---:|---|",
    ]
    for v in results["variants"]:
        rate = "-" if v["take_rate"] is None else f"{v['take_rate']:.4f}"
        interval = "-" if v["interval"] is None else f"{v['interval'][0]:.4f} - {v['interval'][1]:.4f}"
        lines.append(
            f"| {v['name']} | {v['model_version']} | {v['impressions']:,} | {v['takes']:,} "
            f"| {rate} | {interval} |"
        )
    base = results["variants"][0]["name"]
    for d in results["difference"]:
        low, high = d["interval"]
        said = "significant" if d["significant"] else "not significant"
        lines.append(
            f"\ndifference {d['variant']} - {base}: {d['difference']:+.4f} "
            f"(95% interval {low:+.4f} .. {high:+.4f}, {said})"
        )
    lines.append(f"verdict: {results['verdict']} (winner: {results['winner']})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airec bench online", description=__doc__.splitlines()[0])
    default = DEFAULT_ROOT / "ml-latest-small" / "ratings.csv"
    parser.add_argument("--file", type=Path, default=default, help="ratings with timestamps (movielens)")
    parser.add_argument("--min-rating", type=float, default=MIN_RATING)
    parser.add_argument("--earlier", type=float, default=0.8, help="share of events (by time) to train on")
    parser.add_argument("--rounds", type=int, default=50, help="at most this many requests per user")
    parser.add_argument("--k", type=int, default=10, help="items per answer")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (the default: 2)")
    parser.add_argument("--env", action="append", default=[], metavar="AIREC_X=VALUE")
    parser.add_argument("--json", type=Path, default=None, help="also write every number here")
    args = parser.parse_args(argv)
    env = dict(pair.split("=", 1) for pair in args.env)
    if any(not key.startswith("AIREC_") for key in env):
        parser.error("--env takes AIREC_* settings")
    if not args.file.is_file():
        parser.error(f"no such file: {args.file}")
    if not 0 < args.earlier < 1 or args.rounds < 1 or args.k < 1:
        parser.error("--earlier must be between 0 and 1, --rounds and --k at least 1")
    try:
        replay = split_by_time(read_timed_ratings(args.file, args.min_rating), args.earlier)
    except ValueError as exc:
        parser.error(str(exc))
    print(
        f"{args.file.name}: {len(replay.earlier)} users before the cut, {len(replay.later)} after "
        f"({sum(map(len, replay.later.values()))} later items)",
        flush=True,
    )
    result = run(
        replay,
        rounds=args.rounds,
        k=args.k,
        workers=args.workers,
        env=env,
        log=lambda s: print(s, flush=True),
    )
    print("\n" + table(result["experiment"]))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0
