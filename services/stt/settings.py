"""The stt service's settings (``STT_*``), read once from the environment at start.

How settings are read and checked, and what every process shares, is in ``voice/settings.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voice.settings import CommonSettings, Env


@dataclass(frozen=True)
class SttSettings:
    common: CommonSettings
    listen: str
    engine: str
    model: str
    device: str
    compute_type: str
    cpu_threads: int
    language: str
    vad_threshold: float
    min_speech_ms: int
    pause_ms: int
    end_of_turn_ms: int
    partial_interval_ms: int
    max_utterance_s: float
    encoder_window_s: float
    decode_workers: int
    max_streams: int
    max_batch: int = 1
    batch_window_ms: int = 0

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> SttSettings:
        env = Env(environ)
        settings = SttSettings(
            common=CommonSettings.read(env, metrics_port=9101),
            listen=env.address("127.0.0.1:50051", "STT_LISTEN"),
            engine=env.text("whisper", "STT_ENGINE", choices=("whisper", "instant")),
            model=env.text("tiny.en", "STT_MODEL", "WHISPER_MODEL", "STT_MODEL_SIZE"),
            device=env.text("auto", "STT_DEVICE", choices=("auto", "cpu", "cuda")),
            compute_type=env.text("auto", "STT_COMPUTE_TYPE"),
            cpu_threads=env.integer(0, "STT_CPU_THREADS", low=0, high=64),
            language=env.text("en", "STT_LANGUAGE"),
            vad_threshold=env.number(0.5, "STT_VAD_THRESHOLD", low=0.05, high=0.95),
            min_speech_ms=env.integer(96, "STT_MIN_SPEECH_MS", low=0, high=2000),
            pause_ms=env.integer(160, "STT_PAUSE_MS", low=32, high=5000),
            end_of_turn_ms=env.integer(480, "STT_END_OF_TURN_MS", low=64, high=10000),
            partial_interval_ms=env.integer(500, "STT_PARTIAL_INTERVAL_MS", low=100, high=10000),
            max_utterance_s=env.number(30.0, "STT_MAX_UTTERANCE_S", low=1.0, high=120.0),
            encoder_window_s=env.number(10.0, "STT_ENCODER_WINDOW_S", low=4.0, high=30.0),
            decode_workers=env.integer(2, "STT_DECODE_WORKERS", low=1, high=64),
            max_streams=env.integer(32, "STT_MAX_STREAMS", low=1, high=10000),
            max_batch=env.integer(1, "STT_MAX_BATCH", low=1, high=64),
            batch_window_ms=env.integer(0, "STT_BATCH_WINDOW_MS", low=0, high=100),
        )
        if settings.pause_ms > settings.end_of_turn_ms:
            env.problem("STT_PAUSE_MS must not exceed STT_END_OF_TURN_MS")
        env.check("stt")
        return settings
