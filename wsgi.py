"""WSGI entry point from a checkout: `gunicorn -c gunicorn.conf.py wsgi:app`; the app is airec.wsgi's,
which an installed wheel carries (`gunicorn -c python:airec.gunicorn_conf airec.wsgi:app`)."""

from airec.wsgi import app

__all__ = ["app"]
