"""The tts service's settings (``TTS_*``, ``EDGE_TTS_*``), read once from the environment.

How settings are read and checked, and what every process shares, is in ``voice/settings.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from services.tts.chunking import FIRST_MAX_WORDS, FIRST_MIN_WORDS
from voice.settings import CommonSettings, Env

TTS_ENGINES = ("piper", "edge", "instant")


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
            listen=env.address("127.0.0.1:50053", "TTS_LISTEN"),
            engines=env.items(("piper",), "TTS_ENGINES"),
            first_chunk_min_words=env.integer(
                FIRST_MIN_WORDS, "TTS_FIRST_CHUNK_MIN_WORDS", low=1, high=50
            ),
            first_chunk_max_words=env.integer(
                FIRST_MAX_WORDS, "TTS_FIRST_CHUNK_MAX_WORDS", low=1, high=100
            ),
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
