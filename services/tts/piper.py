"""The embedded voice: Piper en_US-joe-medium, run on the CPU through onnxruntime."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import onnxruntime
from piper import PiperVoice

from voice.models import piper_voice_files

log = logging.getLogger(__name__)


class PiperEngine:
    name = "piper"

    def __init__(self, threads: int = 0) -> None:
        files = piper_voice_files()
        started = time.perf_counter()
        self._voice = PiperVoice.load(str(files.model), str(files.config))
        if threads:
            # Piper's own session uses every core; on a small machine that fights the LLM.
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self._voice.session = onnxruntime.InferenceSession(
                str(files.model), sess_options=options, providers=["CPUExecutionProvider"]
            )
        self.sample_rate: int = int(self._voice.config.sample_rate)
        log.info("loaded piper voice %s in %.2fs", files.model.stem, time.perf_counter() - started)

    def synthesize(self, text: str) -> Iterator[bytes]:
        for chunk in self._voice.synthesize(text):
            yield chunk.audio_int16_bytes

    def warm_up(self) -> None:
        for _ in self.synthesize("Hello there."):
            pass
