"""The embedded voice: Piper en_US-joe-medium, run on the CPU through onnxruntime."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from piper import PiperVoice

from voice.models import piper_voice_files

log = logging.getLogger(__name__)


class PiperEngine:
    name = "piper"

    def __init__(self) -> None:
        files = piper_voice_files()
        started = time.perf_counter()
        self._voice = PiperVoice.load(str(files.model), str(files.config))
        self.sample_rate: int = int(self._voice.config.sample_rate)
        log.info("loaded piper voice %s in %.2fs", files.model.stem, time.perf_counter() - started)

    def synthesize(self, text: str) -> Iterator[bytes]:
        for chunk in self._voice.synthesize(text):
            yield chunk.audio_int16_bytes

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello there."):
            pass
