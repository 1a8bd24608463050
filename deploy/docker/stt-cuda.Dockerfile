# syntax=docker/dockerfile:1
# The stt image for NVIDIA GPUs: the same service on the CUDA 12 + cuDNN 9 runtime that the
# CTranslate2 wheel (built against CUDA 12.x) loads libcublas.so.12 from. Whisper runs in
# float16 on the GPU. Needs a driver that supports CUDA 12.6 on the host (>= 560, or >= 525
# with CUDA minor-version compatibility) and the NVIDIA container toolkit.
#   docker build -f deploy/docker/stt-cuda.Dockerfile -t voice-agent/stt-cuda:0.1.0 .
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Ubuntu 24.04's Python is 3.12 (the project needs 3.11 or later; every pinned stt package
# has a cp312 wheel). Debian package versions are not pinned: Ubuntu's archive drops old
# versions on each security update, so a pin would break the build rather than make it
# reproducible. The base image tag is what pins the system.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 voice-agent \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin voice-agent

COPY requirements.txt /tmp/build/requirements.txt
COPY deploy/docker/requirements/ /tmp/build/requirements/
RUN python3 -m venv /opt/venv \
    && pip install --no-cache-dir -c /tmp/build/requirements.txt -r /tmp/build/requirements/stt.txt \
    && rm -rf /tmp/build

WORKDIR /app
COPY voice/ voice/
COPY services/__init__.py services/__init__.py
COPY services/stt/ services/stt/
COPY deploy/docker/probe.py probe.py
RUN python -m compileall -q voice services probe.py \
    && python probe.py imports services.stt

# STT_DEVICE=cuda fails at start when no GPU is visible, rather than quietly running on the
# CPU; set STT_DEVICE=auto to allow the fallback.
ENV STT_LISTEN=0.0.0.0:50051 \
    STT_DEVICE=cuda \
    STT_COMPUTE_TYPE=float16 \
    OTEL_SERVICE_NAME=stt \
    HF_HUB_OFFLINE=1

USER 10001:10001
EXPOSE 50051
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "/app/probe.py", "grpc", "STT_LISTEN", "50051"]
STOPSIGNAL SIGTERM
CMD ["python", "-m", "services.stt"]
