"""Settings for every process, read once from the environment and validated at start.

Each process builds one frozen settings object with ``<Kind>Settings.from_env()``. A bad value
raises :class:`SettingsError` naming the variable, so the process fails at once with a clear
message. Nothing else in the project reads ``os.environ``; ``OTEL_*`` variables are left to the
OpenTelemetry SDK.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from voice.errors import SettingsError

N = TypeVar("N", int, float)

LLM_PROVIDERS = ("gemini", "local", "demo", "instant")
TTS_ENGINES = ("piper", "edge", "instant")

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant in a spoken conversation. Your words are read aloud, "
    "so answer in one to three short sentences, and keep the first sentence very short. "
    "Never use markdown, lists, code, emoji or symbols. Write numbers, units and symbols the "
    "way they are spoken. If you do not know something, say so briefly."
)


class Env:
    """Typed access to environment variables that collects every problem before failing."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._problems: list[str] = []

    def raw(self, *names: str) -> tuple[str, str] | None:
        for name in names:
            value = self._environ.get(name)
            if value is not None and value.strip() != "":
                return name, value.strip()
        return None

    def text(self, default: str, *names: str, choices: tuple[str, ...] = ()) -> str:
        found = self.raw(*names)
        if found is None:
            return default
        name, value = found
        if choices and value not in choices:
            self._problems.append(f"{name}={value!r}: expected one of {', '.join(choices)}")
            return default
        return value

    def integer(
        self, default: int, *names: str, low: int | None = None, high: int | None = None
    ) -> int:
        found = self.raw(*names)
        if found is None:
            return default
        name, value = found
        try:
            number = int(value)
        except ValueError:
            self._problems.append(f"{name}={value!r}: expected a whole number")
            return default
        return self._in_range(name, number, low, high, default)

    def number(
        self, default: float, *names: str, low: float | None = None, high: float | None = None
    ) -> float:
        found = self.raw(*names)
        if found is None:
            return default
        name, value = found
        try:
            number = float(value)
        except ValueError:
            self._problems.append(f"{name}={value!r}: expected a number")
            return default
        if not math.isfinite(number):
            self._problems.append(f"{name}={value!r}: expected a finite number")
            return default
        return self._in_range(name, number, low, high, default)

    def flag(self, default: bool, *names: str) -> bool:
        found = self.raw(*names)
        if found is None:
            return default
        name, value = found
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self._problems.append(f"{name}={value!r}: expected true or false")
        return default

    def items(self, default: tuple[str, ...], *names: str) -> tuple[str, ...]:
        found = self.raw(*names)
        if found is None:
            return default
        return tuple(item.strip() for item in found[1].split(",") if item.strip())

    def problem(self, message: str) -> None:
        self._problems.append(message)

    def check(self, what: str) -> None:
        if self._problems:
            lines = "\n  ".join(self._problems)
            raise SettingsError(f"invalid {what} settings:\n  {lines}")

    def _in_range(self, name: str, number: N, low: N | None, high: N | None, default: N) -> N:
        if (low is not None and number < low) or (high is not None and number > high):
            self._problems.append(f"{name}={number}: expected a value in [{low}, {high}]")
            return default
        return number


def _address(env: Env, default: str, *names: str) -> str:
    value = env.text(default, *names)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        env.problem(f"{names[0]}={value!r}: expected host:port")
    return value


@dataclass(frozen=True)
class CommonSettings:
    log_level: str
    cache_dir: Path
    # Where the process serves Prometheus metrics over HTTP (0: not at all).
    metrics_port: int

    @staticmethod
    def read(env: Env, metrics_port: int = 0) -> CommonSettings:
        return CommonSettings(
            log_level=env.text("INFO", "LOG_LEVEL", choices=("DEBUG", "INFO", "WARNING", "ERROR")),
            cache_dir=Path(env.text(".cache/models", "VOICE_CACHE_DIR")),
            metrics_port=env.integer(metrics_port, "METRICS_PORT", low=0, high=65535),
        )


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

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> SttSettings:
        env = Env(environ)
        settings = SttSettings(
            common=CommonSettings.read(env, metrics_port=9101),
            listen=_address(env, "127.0.0.1:50051", "STT_LISTEN"),
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
        )
        if settings.pause_ms > settings.end_of_turn_ms:
            env.problem("STT_PAUSE_MS must not exceed STT_END_OF_TURN_MS")
        env.check("stt")
        return settings


@dataclass(frozen=True)
class LlmSettings:
    common: CommonSettings
    listen: str
    providers: tuple[str, ...]
    model_path: str
    system_prompt: str
    max_reply_tokens: int
    temperature: float
    context_tokens: int
    parallel: int
    threads: int
    nice: int
    queue_limit: int
    batch_tokens: int
    gemini_model: str
    gemini_base_url: str
    gemini_timeout_s: float
    gemini_thinking_budget: int
    gemini_api_key: str = field(default="", repr=False)

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> LlmSettings:
        env = Env(environ)
        api_key = env.text("", "GEMINI_API_KEY", "GOOGLE_API_KEY")
        # Gemini leads the default order only when there is a key to use it with.
        default_providers = ("gemini", "local", "demo") if api_key else ("local", "demo")
        settings = LlmSettings(
            common=CommonSettings.read(env, metrics_port=9102),
            listen=_address(env, "127.0.0.1:50052", "LLM_LISTEN"),
            providers=env.items(default_providers, "LLM_PROVIDERS"),
            model_path=env.text("", "LLM_MODEL_PATH"),
            system_prompt=env.text(DEFAULT_SYSTEM_PROMPT, "LLM_SYSTEM_PROMPT"),
            max_reply_tokens=env.integer(96, "LLM_MAX_REPLY_TOKENS", low=8, high=4096),
            temperature=env.number(0.6, "LLM_TEMPERATURE", low=0.0, high=2.0),
            context_tokens=env.integer(4096, "LLM_CONTEXT_TOKENS", low=512, high=131072),
            parallel=env.integer(2, "LLM_PARALLEL", low=1, high=64),
            threads=env.integer(0, "LLM_THREADS", low=0, high=256),
            nice=env.integer(10, "LLM_NICE", low=0, high=19),
            queue_limit=env.integer(8, "LLM_QUEUE_LIMIT", low=0, high=10000),
            batch_tokens=env.integer(128, "LLM_BATCH_TOKENS", low=16, high=4096),
            gemini_model=env.text("gemini-2.5-flash", "LLM_GEMINI_MODEL"),
            gemini_base_url=env.text("", "LLM_GEMINI_BASE_URL"),
            gemini_timeout_s=env.number(5.0, "LLM_GEMINI_TIMEOUT_S", low=0.1, high=300.0),
            gemini_thinking_budget=env.integer(0, "LLM_GEMINI_THINKING_BUDGET", low=-1, high=32768),
            gemini_api_key=api_key,
        )
        unknown = [p for p in settings.providers if p not in LLM_PROVIDERS]
        if unknown or not settings.providers:
            env.problem(
                f"LLM_PROVIDERS: unknown or empty {unknown}; choose from {', '.join(LLM_PROVIDERS)}"
            )
        if len(set(settings.providers)) != len(settings.providers):
            env.problem(f"LLM_PROVIDERS={','.join(settings.providers)}: a provider is listed twice")
        base_url = settings.gemini_base_url
        if base_url and not base_url.startswith(("http://", "https://")):
            env.problem(f"LLM_GEMINI_BASE_URL={base_url!r}: expected an http:// or https:// URL")
        if settings.max_reply_tokens * 2 > settings.context_tokens:
            env.problem("LLM_MAX_REPLY_TOKENS must be at most half of LLM_CONTEXT_TOKENS")
        env.check("llm")
        return settings


@dataclass(frozen=True)
class TtsSettings:
    common: CommonSettings
    listen: str
    engines: tuple[str, ...]
    first_chunk_min_words: int
    first_chunk_max_words: int
    frame_ms: int
    threads: int
    edge_voice: str
    edge_url: str
    edge_timeout_ms: int
    cache_mb: float

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> TtsSettings:
        env = Env(environ)
        settings = TtsSettings(
            common=CommonSettings.read(env, metrics_port=9103),
            listen=_address(env, "127.0.0.1:50053", "TTS_LISTEN"),
            engines=env.items(("piper",), "TTS_ENGINES"),
            first_chunk_min_words=env.integer(2, "TTS_FIRST_CHUNK_MIN_WORDS", low=1, high=50),
            first_chunk_max_words=env.integer(3, "TTS_FIRST_CHUNK_MAX_WORDS", low=1, high=100),
            frame_ms=env.integer(20, "TTS_FRAME_MS", low=20, high=40),
            threads=env.integer(1, "TTS_THREADS", low=0, high=64),
            edge_voice=env.text("en-US-AriaNeural", "EDGE_TTS_VOICE"),
            edge_url=env.text("", "EDGE_TTS_URL"),
            edge_timeout_ms=env.integer(2000, "EDGE_TTS_TIMEOUT_MS", low=100, high=60000),
            cache_mb=env.number(8.0, "TTS_CACHE_MB", low=0.0, high=4096.0),
        )
        if [e for e in settings.engines if e not in TTS_ENGINES] or not settings.engines:
            env.problem(
                f"TTS_ENGINES={','.join(settings.engines)}: choose from {', '.join(TTS_ENGINES)}"
            )
        if len(set(settings.engines)) != len(settings.engines):
            env.problem(f"TTS_ENGINES={','.join(settings.engines)}: an engine is listed twice")
        if not re.fullmatch(
            r"[a-z]{2,}-[A-Z]{2,}-\S+Neural|Microsoft Server Speech Text to Speech Voice \(.+,.+\)",
            settings.edge_voice,
        ):
            env.problem(
                f"EDGE_TTS_VOICE={settings.edge_voice!r}: expected a name like en-US-AriaNeural"
            )
        if settings.edge_url and not settings.edge_url.startswith(("ws://", "wss://")):
            env.problem(f"EDGE_TTS_URL={settings.edge_url!r}: expected a ws:// or wss:// URL")
        if settings.first_chunk_min_words > settings.first_chunk_max_words:
            env.problem("TTS_FIRST_CHUNK_MIN_WORDS must not exceed TTS_FIRST_CHUNK_MAX_WORDS")
        env.check("tts")
        return settings


@dataclass(frozen=True)
class GatewaySettings:
    common: CommonSettings
    host: str
    port: int
    stt_address: str
    llm_address: str
    tts_address: str
    tokens: tuple[str, ...]
    token_secret: str
    allowed_origins: tuple[str, ...]
    input_sample_rate: int
    output_sample_rate: int
    max_sessions: int
    max_frame_bytes: int
    pipeline: str
    barge_in_ms: int
    early_thinking: bool
    idle_timeout_s: float
    turn_timeout_s: float
    drain_timeout_s: float

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> GatewaySettings:
        env = Env(environ)
        settings = GatewaySettings(
            common=CommonSettings.read(env),
            host=env.text("127.0.0.1", "GATEWAY_HOST"),
            port=env.integer(8000, "GATEWAY_PORT", low=0, high=65535),
            stt_address=_address(env, "127.0.0.1:50051", "GATEWAY_STT_ADDRESS"),
            llm_address=_address(env, "127.0.0.1:50052", "GATEWAY_LLM_ADDRESS"),
            tts_address=_address(env, "127.0.0.1:50053", "GATEWAY_TTS_ADDRESS"),
            tokens=env.items((), "GATEWAY_TOKENS"),
            token_secret=env.text("", "GATEWAY_TOKEN_SECRET"),
            allowed_origins=env.items(("*",), "GATEWAY_ALLOWED_ORIGINS"),
            input_sample_rate=env.integer(16000, "GATEWAY_INPUT_SAMPLE_RATE", low=8000, high=48000),
            output_sample_rate=env.integer(
                24000, "GATEWAY_OUTPUT_SAMPLE_RATE", low=8000, high=48000
            ),
            max_sessions=env.integer(32, "GATEWAY_MAX_SESSIONS", low=1, high=10000),
            max_frame_bytes=env.integer(65536, "GATEWAY_MAX_FRAME_BYTES", low=1024, high=1 << 22),
            pipeline=env.text("streaming", "GATEWAY_PIPELINE", choices=("streaming", "serial")),
            barge_in_ms=env.integer(300, "GATEWAY_BARGE_IN_MS", low=0, high=5000),
            early_thinking=env.flag(True, "GATEWAY_EARLY_THINKING"),
            idle_timeout_s=env.number(120.0, "GATEWAY_IDLE_TIMEOUT_S", low=1.0, high=86400.0),
            turn_timeout_s=env.number(30.0, "GATEWAY_TURN_TIMEOUT_S", low=1.0, high=600.0),
            drain_timeout_s=env.number(10.0, "GATEWAY_DRAIN_TIMEOUT_S", low=0.0, high=600.0),
        )
        if not settings.tokens and not settings.token_secret:
            env.problem("set GATEWAY_TOKENS or GATEWAY_TOKEN_SECRET: every client needs a token")
        if settings.token_secret and len(settings.token_secret) < 16:
            env.problem("GATEWAY_TOKEN_SECRET must be at least 16 characters")
        env.check("gateway")
        return settings
