"""WSGI entry point: `gunicorn -c python:airec.gunicorn_conf airec.wsgi:app` (settings from AIREC_*).

The app's threads (model poller, scheduler) start in each worker after the fork (airec.gunicorn_conf's
post_worker_init, or a worker's first request under another server), so `--preload` is safe.
"""

from airec.app import create_app

app = create_app(start_threads=False)
