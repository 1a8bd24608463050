# The gateway image: aiohttp, the web client, gRPC clients to the three stages.
# Build from the repository root (the build context is the whole repository, .dockerignore
# keeps it small):
#   docker build -f deploy/docker/gateway.Dockerfile -t voice-agent/gateway:0.1.0 .
# BASE_IMAGE: the public Python slim image by default; machines without registry access build
# a local Debian bookworm one with `make base-image`, which `make images` then passes here.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Every version comes from requirements.txt (used as constraints); the list only names what
# this image needs.
# The requirement lists are bind-mounted (no layer keeps them); pip's cache is a BuildKit
# cache mount, so a rebuild downloads nothing it already has and no layer holds the cache.
RUN --mount=type=bind,source=requirements.txt,target=/tmp/build/requirements.txt \
    --mount=type=bind,source=deploy/docker/requirements,target=/tmp/build/requirements \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    groupadd --system --gid 10001 voice-agent \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin voice-agent \
    && python -m venv /opt/venv \
    && pip install -c /tmp/build/requirements.txt -r /tmp/build/requirements/gateway.txt

WORKDIR /app
COPY voice/ voice/
COPY gateway/ gateway/
COPY deploy/docker/probe.py probe.py
RUN python -m compileall -q voice gateway probe.py \
    && python probe.py imports gateway

# Containers listen on every interface; the rest of the settings come from the environment
# (deploy/.env.example, the Kubernetes ConfigMap). GATEWAY_TOKEN_SECRET or GATEWAY_TOKENS must
# be set at run time: the gateway refuses to start without one.
ENV GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000 \
    OTEL_SERVICE_NAME=gateway

USER 10001:10001
EXPOSE 8000
# Liveness only: /health (readiness) also needs the three stages, which compose checks itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/app/probe.py", "http", "GATEWAY_PORT", "8000", "/health/live"]
# SIGTERM closes every session with 1001 ("going away") and stops within 10 s.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "gateway"]
