"""``python -m services.<name>``: the one bootstrap (voice/serving.py run_service) in each.

A bad setting ends the process at once with exit status 2 and one message naming it; with the
instant engines (no model) each service serves its health check, and stops on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from launcher.cluster import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent.parent
BAD = {"stt": ("STT_DEVICE", "tpu"), "llm": ("LLM_NICE", "99"), "tts": ("TTS_FRAME_MS", "5")}
INSTANT = {"stt": {"STT_ENGINE": "instant"}, "llm": {"LLM_PROVIDERS": "instant"}}
INSTANT["tts"] = {"TTS_ENGINES": "instant"}
SERVICES = {
    "stt": "voice.v1.SpeechToTextService",
    "llm": "voice.v1.LanguageModelService",
    "tts": "voice.v1.TextToSpeechService",
}


def _environ(**extra: str) -> dict[str, str]:
    return {**os.environ, "OTEL_SDK_DISABLED": "true", "METRICS_PORT": "0", **extra}


@pytest.mark.parametrize("name", ["stt", "llm", "tts"])
def test_a_bad_setting_stops_the_service_with_status_2_naming_it(name: str) -> None:
    variable, value = BAD[name]
    result = subprocess.run(
        [sys.executable, "-m", f"services.{name}"],
        cwd=ROOT,
        env=_environ(**{variable: value}),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"{name}: invalid {name} settings:\n  {variable}=")
    assert value in result.stderr


def _health(port: int, service: str) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service=service)
        try:
            return int(health_pb2_grpc.HealthStub(channel).Check(request, timeout=1.0).status)
        except grpc.RpcError:
            return -1


@pytest.mark.parametrize("name", ["stt", "llm", "tts"])
def test_a_service_serves_its_health_and_stops_on_sigterm(name: str) -> None:
    port = free_port()
    listen = {f"{name.upper()}_LISTEN": f"127.0.0.1:{port}"}
    process = subprocess.Popen(
        [sys.executable, "-m", f"services.{name}"],
        cwd=ROOT,
        env=_environ(**INSTANT[name], **listen),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while _health(port, SERVICES[name]) != health_pb2.HealthCheckResponse.SERVING:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the service did not start serving"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert f"{name} serving on 127.0.0.1:{port}" in stderr
    assert f"{name} stopped" in stderr
