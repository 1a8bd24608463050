"""faster-whisper decoding, tuned for latency: greedy, no conditioning, guarded on silence."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel

from voice.models import whisper_model_path
from voice.settings import SttSettings

log = logging.getLogger(__name__)

# Segments the model itself believes are not speech, and low-confidence ones, are dropped.
NO_SPEECH_PROBABILITY = 0.6
MIN_AVG_LOGPROB = -1.0


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    compute_type: str


def choose_device(device: str, compute_type: str) -> DeviceChoice:
    """CUDA float16 when a GPU is there (or asked for), CPU int8 otherwise."""
    if device == "auto":
        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return DeviceChoice(device, compute_type)


class WhisperDecoder:
    def __init__(self, settings: SttSettings, *, workers: int = 2) -> None:
        path = whisper_model_path(settings.model, settings.common.cache_dir)
        choice = choose_device(settings.device, settings.compute_type)
        started = time.perf_counter()
        self._model = WhisperModel(
            str(path),
            device=choice.device,
            compute_type=choice.compute_type,
            cpu_threads=settings.cpu_threads,
            num_workers=workers,
            local_files_only=True,
        )
        self._language = settings.language or None
        self.description = f"whisper {settings.model} on {choice.device} ({choice.compute_type})"
        log.info("loaded %s in %.2fs", self.description, time.perf_counter() - started)

    def decode(self, samples: np.ndarray) -> str:
        segments, _info = self._model.transcribe(
            samples,
            language=self._language,
            beam_size=1,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            no_speech_threshold=NO_SPEECH_PROBABILITY,
            log_prob_threshold=MIN_AVG_LOGPROB,
        )
        texts = [
            segment.text.strip()
            for segment in segments
            if not (
                segment.no_speech_prob > NO_SPEECH_PROBABILITY
                and segment.avg_logprob < MIN_AVG_LOGPROB
            )
        ]
        return " ".join(text for text in texts if text)

    def warm_up(self) -> None:
        self.decode(np.zeros(16000, dtype=np.float32))
