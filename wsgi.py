"""WSGI entry point: `gunicorn wsgi:app` (settings from AIREC_* environment variables)."""
from airec import create_app

app = create_app()
