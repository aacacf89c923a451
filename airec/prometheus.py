"""Prometheus metrics at /metrics, every name prefixed `airec_`.

Under gunicorn each worker is its own process, so counters live in prometheus_client's multiprocess
mode: airec.gunicorn_conf sets PROMETHEUS_MULTIPROC_DIR (a fresh directory) before any worker imports
prometheus_client, and a scrape on any worker adds up the files of all of them. Without that
variable (Flask test client, `airec train`) metrics stay in this process.

What describes the whole deployment rather than one process (the active model and its age) is read
from the database at scrape time, so every worker answers the same.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator

from flask import Flask, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

REQUESTS = Counter(
    "airec_requests", "HTTP requests answered, by url rule (not raw path)", ["method", "endpoint", "status"]
)
LATENCY = Histogram(
    "airec_request_duration_seconds",
    "Time to answer a request, by url rule",
    ["method", "endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
INGESTED_INTERACTIONS = Counter("airec_ingested_interactions", "Interactions stored by ingestion")
INGESTED_RECORDS = Counter("airec_ingested_records", "Records stored by ingestion")
TRAINING_RUNS = Counter("airec_training_runs", "Training runs finished, by outcome", ["status"])
TRAINING_DURATION = Histogram(
    "airec_training_duration_seconds",
    "Wall time of finished training runs, by outcome",
    ["status"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600, 7200),
)
IMPRESSIONS = Counter(
    "airec_impressions", "Impressions recorded (answers shown)", ["model_version", "variant"]
)
TAKES = Counter("airec_takes", "Impressions taken by a later event", ["model_version", "variant"])
IMPRESSIONS_DROPPED = Counter(
    "airec_impressions_dropped",
    "Impressions not recorded: the worker's queue was full, or the database refused the batch",
    ["model_version", "variant"],
)
UNKNOWN_RECOMMENDATION_IDS = Counter(
    "airec_unknown_recommendation_ids",
    "Events naming a recommendation_id no recorded impression has (stored, never a take)",
)


#: Decided once, like prometheus_client itself does when the metrics above are created: a variable
#: set later in this process (e.g. by loading airec.gunicorn_conf) must not switch the mode half-way.
_MULTIPROC_DIR = os.environ.get(MULTIPROC_ENV) or None


def multiprocess_dir() -> str | None:
    return _MULTIPROC_DIR


def endpoint_label() -> str:
    """The url rule ('/api/v1/users/<string:user>/recommendations'), bounded in cardinality."""
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def observe_request(status: int, seconds: float) -> None:
    """Count one answered request (called from the after_request hook in create_app)."""
    endpoint = endpoint_label()
    REQUESTS.labels(request.method, endpoint, str(status)).inc()
    LATENCY.labels(request.method, endpoint).observe(seconds)


def observe_ingest(records: int, interactions: int) -> None:
    INGESTED_RECORDS.inc(records)
    INGESTED_INTERACTIONS.inc(interactions)


def observe_impressions(batch) -> None:
    """Count written impressions (tuples whose 4th and 5th values are model version and variant)."""
    from collections import Counter as Tally

    for (version, variant), n in Tally((i[3] or "", i[4] or "") for i in batch).items():
        IMPRESSIONS.labels(version, variant).inc(n)


def observe_dropped(model_version: str | None, variant: str | None) -> None:
    IMPRESSIONS_DROPPED.labels(model_version or "", variant or "").inc()


def observe_take(model_version: str | None, variant: str | None) -> None:
    TAKES.labels(model_version or "", variant or "").inc()


def observe_unknown_id(count: int = 1) -> None:
    if count:
        UNKNOWN_RECOMMENDATION_IDS.inc(count)


def observe_training(status: str, seconds: float) -> None:
    TRAINING_RUNS.labels(status).inc()
    TRAINING_DURATION.labels(status).observe(seconds)


class ModelCollector:
    """The active model (from the database pointer) and its age, computed at scrape time."""

    def collect(self) -> Iterator[Metric]:
        from airec import leases
        from airec.db import database
        from airec.tables import ModelVersion, utcnow

        info = InfoMetricFamily("airec_active_model", "The model version every worker serves")
        age = GaugeMetricFamily("airec_active_model_age_seconds", "Seconds since the active model was made")
        opened = database.is_closed()  # outside a request (tests, CLI) open and close our own
        try:
            if opened:
                database.connect()
            version = leases.get_active_version()
            row = ModelVersion.get_or_none(ModelVersion.version == version) if version else None
            if row is not None:
                info.add_metric([], {"version": row.version, "algorithm": row.algorithm})
                age.add_metric([], max(0.0, (utcnow() - row.created_at).total_seconds()))
        except Exception:  # a scrape must not fail because the database blinked
            log.warning("could not read the active model for /metrics", exc_info=True)
        finally:
            if opened and not database.is_closed():
                database.close()
        yield info
        yield age


_model_registry = CollectorRegistry(auto_describe=False)
_model_registry.register(ModelCollector())


def render() -> bytes:
    """The exposition text: all workers' counters (multiprocess) or this process's, plus the model."""
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        workers = CollectorRegistry()
        multiprocess.MultiProcessCollector(workers, path=path)
        body = generate_latest(workers)
    else:
        body = generate_latest(REGISTRY)
    return body + generate_latest(_model_registry)


def metrics_view() -> Response:
    """GET /metrics. The one place the view is defined: wrap or guard it here (settings.public_metrics).

    It is a plain Flask route, so it stays out of the OpenAPI document on purpose: the format is
    Prometheus text, not JSON.
    """
    started = time.perf_counter()
    body = render()
    log.debug("metrics rendered in %.1f ms", (time.perf_counter() - started) * 1000)
    return Response(body, content_type=CONTENT_TYPE_LATEST)


def init_metrics(app: Flask) -> None:
    app.add_url_rule("/metrics", endpoint="metrics", view_func=metrics_view, methods=["GET"])
