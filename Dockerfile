# airec: one gunicorn service. Build: docker build -t airec .   Run: see docs/deploy.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AIREC_DATABASE_URL=sqlite:////data/airec.db \
    AIREC_MODELS_DIR=/models_store \
    AIREC_BIND=0.0.0.0:8000 \
    AIREC_WORKERS=2

WORKDIR /src

# The CPU build of torch keeps the image small (the default PyPI wheel pulls CUDA).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY setup.py setup.cfg pyproject.toml README.md ./
COPY airec ./airec
COPY migrations ./migrations
# A regular install, as from the wheel: the package carries its migrations (airec/migrations), gunicorn
# settings (airec.gunicorn_conf), app (airec.wsgi) and console files, so the sources are not kept.
RUN pip install '.[postgres]' && rm -rf /src
WORKDIR /app

RUN useradd --create-home --uid 10001 airec \
    && mkdir -p /data /models_store \
    && chown -R airec:airec /data /models_store
USER airec

VOLUME ["/data", "/models_store"]
EXPOSE 8000

HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"

ENTRYPOINT ["gunicorn", "-c", "python:airec.gunicorn_conf", "airec.wsgi:app"]
