"""gunicorn settings for `gunicorn -c gunicorn.conf.py wsgi:app` from a checkout: they live in the
package (airec/gunicorn_conf.py), so an installed wheel has them too."""

from airec.gunicorn_conf import *  # noqa: F403
