"""gunicorn settings: `gunicorn -c python:airec.gunicorn_conf airec.wsgi:app` (what `airec serve` runs).

A module of the package, so an installed wheel carries it and it works from any folder; the checkout's
gunicorn.conf.py re-exports it. Every value can be overridden on the command line or by GUNICORN_CMD_ARGS.
"""

import os
import shutil
import tempfile

__all__ = [
    "accesslog",
    "bind",
    "child_exit",
    "errorlog",
    "forwarded_allow_ips",
    "graceful_timeout",
    "loglevel",
    "on_exit",
    "on_starting",
    "post_worker_init",
    "threads",
    "timeout",
    "worker_class",
    "worker_exit",
    "workers",
]

#: Prometheus multiprocess mode: each worker keeps its counters in files here and a scrape on any
#: worker adds them up. Set before a worker imports prometheus_client; a fresh directory unless given.
_OWN_METRICS_DIR = not os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="airec-metrics-")

bind = os.environ.get("AIREC_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("AIREC_WORKERS", "2"))
threads = int(os.environ.get("AIREC_THREADS", "4"))
worker_class = "gthread"
timeout = 120
graceful_timeout = 30
accesslog = None  # airec logs every request itself (airec.access), with the client's address
#: gunicorn would believe X-Forwarded-Proto from 127.0.0.1 by default; only airec's ProxyFix, governed by
#: AIREC_TRUSTED_PROXIES, reads forwarded headers, so a client on this host cannot pass for https.
forwarded_allow_ips = ""
errorlog = "-"
loglevel = os.environ.get("AIREC_LOG_LEVEL", "info").lower()


def on_starting(server):
    """Create or upgrade the schema once, in the master, before workers race to do it."""
    _clean_metrics_dir()
    import peewee

    from airec.config import Settings
    from airec.db import init_db, migrate

    db = init_db(Settings.from_env().database_url)
    try:
        with db.connection_context():
            migrate(db)
    except (peewee.OperationalError, peewee.InterfaceError) as exc:  # workers migrate once it is back
        server.log.error("database unreachable, migrations deferred: %s", exc)
    db.close()


def _clean_metrics_dir():
    """Counters of a previous master must not be added to this one's."""
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.endswith(".db"):
            os.remove(os.path.join(path, name))


def post_worker_init(worker):
    """In each worker, after the fork: one torch and one BLAS thread (a request scores one row, and a
    second thread per worker thread would only fight the other workers for the same cores; training
    sets its own, AIREC_TRAIN_THREADS), then the app's poller and scheduler (threads never cross a fork)."""
    import torch
    from threadpoolctl import threadpool_limits

    from airec.app import start_background

    torch.set_num_threads(1)
    threadpool_limits(limits=1)
    start_background(worker.wsgi)


def worker_exit(server, worker):
    """A worker leaving cleanly (restart, shutdown) writes the impressions it still holds."""
    from airec.app import stop_background

    try:
        stop_background(worker.wsgi)
    except Exception:  # never keep a worker from exiting
        server.log.exception("could not stop the worker's threads cleanly")


def child_exit(server, worker):
    """A dead worker's live gauges must not be reported any more (its counters stay summed)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """The metrics folder this master made goes with it."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
