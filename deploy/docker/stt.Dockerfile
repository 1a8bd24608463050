# The stt image for CPUs: faster-whisper (CTranslate2, int8 on CPU), Silero VAD and the
# embedded Whisper tiny.en (a pinned package), so the container needs no network at start.
# For NVIDIA GPUs build stt-cuda.Dockerfile instead.
#   docker build -f deploy/docker/stt.Dockerfile -t voice-agent/stt:0.1.0 .
# BASE_IMAGE: the public Python slim image by default; machines without registry access build
# a local Debian bookworm one with `make base-image`, which `make images` then passes here.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# The requirement lists are bind-mounted (no layer keeps them); pip's cache is a BuildKit
# cache mount, so a rebuild downloads nothing it already has and no layer holds the cache.
RUN --mount=type=bind,source=requirements.txt,target=/tmp/build/requirements.txt \
    --mount=type=bind,source=deploy/docker/requirements,target=/tmp/build/requirements \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    groupadd --system --gid 10001 voice-agent \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin voice-agent \
    && python -m venv /opt/venv \
    && pip install -c /tmp/build/requirements.txt -r /tmp/build/requirements/stt.txt

WORKDIR /app
COPY voice/ voice/
COPY services/__init__.py services/__init__.py
COPY services/stt/ services/stt/
COPY deploy/docker/probe.py probe.py
RUN python -m compileall -q voice services probe.py \
    && python probe.py imports services.stt

# HF_HUB_OFFLINE: the model is a local folder; never reach for a model hub.
ENV STT_LISTEN=0.0.0.0:50051 \
    STT_DEVICE=cpu \
    OTEL_SERVICE_NAME=stt \
    HF_HUB_OFFLINE=1

USER 10001:10001
EXPOSE 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/app/probe.py", "grpc", "STT_LISTEN", "50051"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.stt"]
