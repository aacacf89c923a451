"""The operator console: pages in the browser over the same services and roles as the JSON API.

/ overview, /models, /training, /try, /items, /experiments, /keys, /audit, and /login. Server-rendered
templates, SVG charts drawn on the server, one stylesheet and one small script, all served by airec
itself (it works air-gapped).
"""

from __future__ import annotations

from flask import Flask

from airec.console.session import init_session


def init_console(app: Flask) -> None:
    """Session, CSRF and the console's blueprint."""
    from airec.console import (  # noqa: F401  (register views on bp)
        access_views,
        experiments_views,
        items_views,
        privacy_views,
    )
    from airec.console.filters import register_filters
    from airec.console.service import metric_pairs
    from airec.console.views import bp

    init_session(app, app.config["AIREC"])
    app.register_blueprint(bp)
    register_filters(app)
    app.jinja_env.globals["metric_pairs"] = metric_pairs
