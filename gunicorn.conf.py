"""gunicorn settings; every value can be overridden on the command line or by GUNICORN_CMD_ARGS."""
import os

bind = os.environ.get("AIREC_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("AIREC_WORKERS", "2"))
threads = int(os.environ.get("AIREC_THREADS", "4"))
worker_class = "gthread"
timeout = 120
graceful_timeout = 30
accesslog = None
errorlog = "-"
loglevel = os.environ.get("AIREC_LOG_LEVEL", "info").lower()


def on_starting(server):
    """Create or upgrade the schema once, in the master, before workers race to do it."""
    from airec.config import Settings
    from airec.db import init_db, migrate

    db = init_db(Settings.from_env().database_url)
    with db.connection_context():
        migrate(db)
    db.close()
