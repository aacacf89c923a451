"""The `airec` command: serve, train, worker, evaluate, bench (running the service and its models);
import, export (data in and out, interactions or with --items the catalogue); dump, restore (a whole
database to one file and back); models, keys (what an operator administers)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from airec.audit import service as audit
from airec.config import Settings, TrainerMode


def bootstrap(settings: Settings) -> None:
    """Database and served model without web server, scheduler or poller threads."""
    from airec.db import init_db, migrate
    from airec.logs import configure_logging
    from airec.serving.served import served_model

    configure_logging(settings.log_level, json_lines=False)
    db = init_db(settings.database_url)
    db.connect(reuse_if_open=True)
    migrate(db)
    served_model.configure(settings.models_dir, settings.model_store)
    served_model.sync()


def cmd_serve(args: argparse.Namespace) -> int:
    """Run gunicorn with the package's settings and app (airec.gunicorn_conf, airec.wsgi:app): both are
    modules of the installed package, so this works from any folder, with or without a checkout."""
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "python:airec.gunicorn_conf",
        "--bind",
        f"{args.host}:{args.port}",
        "--workers",
        str(args.workers),
        "airec.wsgi:app",
    ]
    os.execv(sys.executable, argv)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from airec.training import service
    from airec.training.status import RunStatus

    settings = Settings.from_env()
    bootstrap(settings)
    bar: tqdm | None = None

    def progress(event: dict) -> None:
        nonlocal bar
        total = int(event.get("max_epochs") or 0) or None
        if bar is None or (total and bar.total != total):
            bar = tqdm(total=total, desc="training", unit="epoch")
        bar.n = int(event.get("epoch") or 0)
        skip = ("epoch", "max_epochs")
        numbers = {k: v for k, v in event.items() if k not in skip and isinstance(v, float)}
        bar.set_postfix({k: f"{v:.4g}" for k, v in numbers.items()})
        bar.refresh()

    try:
        params = json.loads(args.params) if args.params else {}
        if not isinstance(params, dict):
            raise ValueError("--params must be a JSON object, e.g. '{\"epochs\": 30}'")
        run = service.start_run(
            settings=settings,
            algorithm=args.algorithm,
            params=params,
            warm_start=args.warm_start,
            trigger="cli",
            background=False,
            on_progress=progress,
        )
    except service.TrainingConflict:
        print("error: a training run is already in progress", file=sys.stderr)
        return 2
    except (service.TrainingRefused, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if bar is not None:
            bar.close()
    audit.record(
        audit.Action.TRAINING_STARTED, f"run {run.id}", actor=audit.CLI, details={"status": run.status}
    )
    if run.status != RunStatus.SUCCEEDED:
        print(f"training run {run.id} failed: {run.error}", file=sys.stderr)
        return 1
    from airec.tables import ModelVersion

    manifest = ModelVersion.get_by_id(run.model_version).manifest
    print(f"run {run.id} succeeded: model {run.model_version} ({manifest['algorithm']})")
    print_evaluation(manifest.get("evaluation") or {})
    return 0


def print_evaluation(evaluation: dict) -> None:
    """A table of the held-out metrics saved at training time."""
    model, popularity = evaluation.get("model", {}), evaluation.get("popularity", {})
    names = [n for n in model if n != "n_units"]
    if not names:
        return
    print(f"held-out units: {model.get('n_units')} (protocol: {evaluation.get('protocol')})")
    print(f"{'metric':<14}{'model':>10}{'popularity':>12}")
    for name in names:
        print(f"{name:<14}{model[name]:>10.4f}{popularity.get(name, float('nan')):>12.4f}")


def cmd_import(args: argparse.Namespace) -> int:
    from airec.catalogue.files import import_items
    from airec.imports import import_file

    if args.format is None and not args.items:
        print(
            "error: --format is required to import interactions (or --items for a catalogue)", file=sys.stderr
        )
        raise SystemExit(2)
    settings = Settings.from_env()
    bootstrap(settings)
    try:
        if args.items:
            result = import_items(args.file, args.format, batch_size=args.batch_size)
        else:
            result = import_file(
                args.file, args.format, min_rating=args.min_rating, batch_size=args.batch_size
            )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Every record as JSON lines (`airec import --format jsonl` reads them back), or with --items the
    catalogue (`airec import --items` reads it back)."""
    from airec.catalogue.files import export_items, format_of
    from airec.exports import export_records
    from airec.privacy.service import write_user_data

    settings = Settings.from_env()
    bootstrap(settings)

    def write(out) -> dict:
        if args.user is not None:
            return write_user_data(out, args.user)
        if args.items:
            return export_items(out, format_of(args.file, None))
        return export_records(out)

    try:
        if args.file == "-":
            result = write(sys.stdout)
        else:
            with open(args.file, "w", encoding="utf-8", newline="") as out:
                result = write(out)
    except (OSError, LookupError, ValueError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, LookupError) else exc}", file=sys.stderr)
        return 2
    print(json.dumps(result), file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """Claim and execute queued training runs (AIREC_TRAINER=worker) and run the retraining schedule."""
    import signal

    from airec.training.worker import Worker

    settings = Settings.from_env()
    bootstrap(settings)
    from airec.db import database

    database.close()  # the worker opens a connection per pass
    worker = Worker(settings)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    if settings.trainer != TrainerMode.WORKER:
        print(
            "note: AIREC_TRAINER is not 'worker': web processes train in their own threads and queue "
            "nothing; set AIREC_TRAINER=worker on every process",
            file=sys.stderr,
        )
    worker.run_forever()
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from airec.serving.served import served_model
    from airec.training.evaluation import NothingToEvaluate, evaluate_active

    settings = Settings.from_env()
    bootstrap(settings)
    try:
        result = evaluate_active(model=served_model.active, k=args.k)
    except NothingToEvaluate as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"model {result['model_version']} ({result['algorithm']}), protocol {result['protocol']}, "
        f"{result['units']} held-out units"
    )
    if result["refit"]:
        print(f"refitted on all {result['refit']['units']} units; the held-out numbers estimate it")
    print(f"{'metric':<14}{'model':>10}{'popularity':>12}")
    for name, value in result["model"].items():
        print(f"{name + '@' + str(args.k):<14}{value:>10.4f}{result['popularity'][name]:>12.4f}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.which == "accuracy":
        from airec.recsys.bench import main as bench_main

        return bench_main(args.rest) or 0
    if args.which == "serving":
        from airec.benchmarks.serving import main as serving_main

        return serving_main(args.rest) or 0
    if args.which == "ingest":
        from airec.benchmarks.ingest import main as ingest_main

        return ingest_main(args.rest) or 0
    if args.which == "scale":
        from airec.benchmarks.scale import main as scale_main

        return scale_main(args.rest) or 0
    if args.which == "load":
        from airec.benchmarks.load import main as load_main

        return load_main(args.rest) or 0
    if args.which == "service":
        from airec.benchmarks.quality import main as quality_main

        return quality_main(args.rest) or 0
    if args.which == "online":
        from airec.benchmarks.online import main as online_main

        return online_main(args.rest) or 0
    if args.which == "request":
        from airec.benchmarks.request_cost import main as request_main

        return request_main(args.rest) or 0
    print(f"unknown benchmark {args.which!r}", file=sys.stderr)
    return 2


def cmd_keys(args: argparse.Namespace) -> int:
    """Manage API keys; `create` prints the key once (only its hash is stored)."""
    from airec.auth import service

    settings = Settings.from_env()
    bootstrap(settings)
    try:
        if args.action == "create":
            row, key = service.create_key(name=args.name, role=args.role)
            audit.record(audit.Action.KEY_CREATED, row.name, actor=audit.CLI, details={"role": row.role})
            print(key)
            print(
                f"created key {row.name!r} (role {row.role}, prefix {row.prefix}); it is shown only once",
                file=sys.stderr,
            )
        elif args.action == "list":
            print(f"{'name':<24}{'role':<8}{'prefix':<14}{'created':<21}last used")
            for row in service.list_keys():
                created = row.created_at.isoformat(timespec="seconds")
                used = row.last_used_at.isoformat(timespec="seconds") if row.last_used_at else "never"
                print(f"{row.name:<24}{row.role:<8}{row.prefix:<14}{created:<21}{used}")
        else:
            service.revoke_key(args.name)
            audit.record(audit.Action.KEY_REVOKED, args.name, actor=audit.CLI)
            print(f"revoked key {args.name!r}")
    except service.KeyProblem as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List model versions, or activate one (promotion or rollback) for every worker."""
    from airec.versions import service

    settings = Settings.from_env()
    bootstrap(settings)
    if args.action == "activate":
        try:
            result = service.activate(args.version)
        except (service.VersionNotFound, service.VersionConflict, service.VersionCorrupt) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        audit.record(audit.Action.MODEL_ACTIVATED, args.version, actor=audit.CLI)
        print(
            f"model {args.version} is active and pinned (was {result['previous']}); workers follow "
            f"within {settings.model_poll_seconds:g}s; `airec models unpin` lets training activate "
            "new versions again"
        )
        return 0
    if args.action == "unpin":
        result = service.unpin()
        audit.record(audit.Action.MODEL_UNPINNED, result["unpinned"], actor=audit.CLI)
        print(f"unpinned {result['unpinned']}" if result["unpinned"] else "no version was pinned")
        return 0
    listing = service.list_versions()
    print(f"{'version':<44}{'algorithm':<13}{'status':<10}{'users':>7}{'items':>7}  held-out")
    for v in listing["versions"]:
        model = (v["evaluation"] or {}).get("model", {})
        metric = next((f"{k}={model[k]:.4f}" for k in ("ndcg@10", "recall@20") if k in model), "")
        data = v["data"] or {}
        status = v["status"] + (" (pinned)" if v["pinned"] else "")
        print(
            f"{v['version']:<44}{v['algorithm']:<13}{status:<10}"
            f"{data.get('users', ''):>7}{data.get('items', ''):>7}  {metric}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="airec", description="Self-hosted neural recommender service.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_service_commands(sub)
    _add_data_commands(sub)
    _add_admin_commands(sub)
    return parser


def _add_service_commands(sub) -> None:
    """serve, train, worker, evaluate, bench: running the service and its models."""
    serve = sub.add_parser("serve", help="run the web service under gunicorn")
    serve.add_argument("--host", default=os.environ.get("AIREC_HOST", "127.0.0.1"))
    # String defaults go through type=int at parse time: a bad AIREC_PORT is a usage error, not a crash.
    serve.add_argument("--port", type=int, default=os.environ.get("AIREC_PORT", "8000"))
    serve.add_argument("--workers", type=int, default=os.environ.get("AIREC_WORKERS", "2"))
    serve.set_defaults(func=cmd_serve)

    train = sub.add_parser("train", help="train a model now, in the foreground, and activate it")
    train.add_argument("--algorithm", default=None, help="autoencoder|ease|itemknn|popularity|auto")
    train.add_argument("--params", default=None, help="JSON hyper-parameters, e.g. '{\"epochs\": 30}'")
    train.add_argument("--warm-start", action="store_true", default=None, help="start from the active model")
    train.set_defaults(func=cmd_train)

    worker = sub.add_parser("worker", help="train queued runs and run the schedule (AIREC_TRAINER=worker)")
    worker.set_defaults(func=cmd_worker)

    ev = sub.add_parser("evaluate", help="evaluate the active model on its held-out units")
    ev.add_argument("--k", type=int, default=10)
    ev.set_defaults(func=cmd_evaluate)

    bench = sub.add_parser("bench", help="benchmarks that print tables")
    bench.add_argument(
        "which", choices=["accuracy", "service", "serving", "ingest", "scale", "load", "online", "request"]
    )
    bench.add_argument("rest", nargs=argparse.REMAINDER, help="options of that benchmark (see --help)")
    bench.set_defaults(func=cmd_bench)


def _add_data_commands(sub) -> None:
    """import and export: data in and out of the database."""
    imp = sub.add_parser("import", help="import interactions (or with --items a catalogue) from a file")
    imp.add_argument("file")
    imp.add_argument(
        "--format",
        choices=["movielens", "csv", "baskets", "jsonl"],
        help="with --items: csv or jsonl (default: by extension)",
    )
    imp.add_argument("--items", action="store_true", help="the file is an item catalogue (CSV or JSON lines)")
    imp.add_argument("--min-rating", type=float, default=None, help="keep ratings >= this (rating data)")
    imp.add_argument("--batch-size", type=int, default=5000)
    imp.set_defaults(func=cmd_import)

    exp = sub.add_parser("export", help="write every record as JSON lines (import them with --format jsonl)")
    exp.add_argument("file", help="output file, or - for stdout")
    exp.add_argument(
        "--items", action="store_true", help="the item catalogue instead (CSV if FILE ends in .csv)"
    )
    exp.add_argument("--user", default=None, help="everything stored about this user, as one JSON document")
    exp.set_defaults(func=cmd_export)

    from airec.backup.commands import add_commands

    add_commands(sub, bootstrap)


def _add_admin_commands(sub) -> None:
    """models and keys: what an operator administers."""
    from airec.auth.roles import KEY_ROLES

    models = sub.add_parser("models", help="list model versions or activate one (rollback)")
    models_sub = models.add_subparsers(dest="action", required=True)
    models_sub.add_parser("list", help="versions, newest first, with status and held-out metric")
    activate = models_sub.add_parser("activate", help="serve (and pin) this version on every worker")
    activate.add_argument("version")
    models_sub.add_parser("unpin", help="let training runs activate new versions again")
    models.set_defaults(func=cmd_models)

    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=[role.value for role in KEY_ROLES])
    keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("--name", required=True)
    keys.set_defaults(func=cmd_keys)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        Settings.from_env()  # a bad AIREC_* value is reported plainly, before any work
    except (ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
