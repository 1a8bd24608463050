"""faster-whisper decoding, tuned for latency: greedy, no conditioning, guarded on silence.

Whisper's encoder always reads a 30 s window, and on a small CPU that fixed cost (about 0.4 s
for tiny.en on two cores) dominates a short utterance. With ``encoder_window_s`` below 30 the
decoder feeds the encoder only a shorter window (the utterance plus a second of silence, at
least ``encoder_window_s``), which costs about a third. The model then tends to repeat itself
past the end of the audio, so decoding runs with timestamps and keeps only the segments that
start inside the speech. Utterances too long for the window take the standard 30 s path.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from voice.models import whisper_model_path
from voice.settings import SttSettings

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FULL_WINDOW_S = 30.0
TRAILING_SILENCE_S = 1.0
SEGMENT_START_MARGIN_S = 0.1
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
        self._window_s = settings.encoder_window_s
        self._tokenizer = Tokenizer(
            self._model.hf_tokenizer,
            self._model.model.is_multilingual,
            task="transcribe",
            language=self._language or "en",
        )
        self.description = (
            f"whisper {settings.model} on {choice.device} ({choice.compute_type}), "
            f"encoder window {self._window_s:g}s"
        )
        log.info("loaded %s in %.2fs", self.description, time.perf_counter() - started)

    def decode(self, samples: np.ndarray) -> str:
        duration_s = len(samples) / SAMPLE_RATE
        if self._window_s >= FULL_WINDOW_S or duration_s + TRAILING_SILENCE_S > self._window_s:
            return self._decode_full(samples)
        return self._decode_compact(samples, duration_s)

    def _decode_full(self, samples: np.ndarray) -> str:
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

    def _decode_compact(self, samples: np.ndarray, duration_s: float) -> str:
        window_samples = int(self._window_s * SAMPLE_RATE)
        padded = np.zeros(window_samples, dtype=np.float32)
        padded[: len(samples)] = samples
        features = self._model.feature_extractor(padded)
        frames = min(features.shape[-1], int(self._window_s * 100))
        frames -= frames % 2
        batch = np.ascontiguousarray(features[None, :, :frames], dtype=np.float32)
        tokenizer = self._tokenizer
        result = self._model.model.generate(
            ctranslate2.StorageView.from_array(batch),
            [list(tokenizer.sot_sequence)],
            beam_size=1,
            max_length=int(16 + 8 * duration_s),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )[0]
        tokens = result.sequences_ids[0]
        avg_logprob = result.scores[0] / (len(tokens) + 1) if result.scores else 0.0
        if result.no_speech_prob > NO_SPEECH_PROBABILITY and avg_logprob < MIN_AVG_LOGPROB:
            return ""
        return self._speech_segments_text(tokens, duration_s)

    def _speech_segments_text(self, tokens: list[int], duration_s: float) -> str:
        """The text of the timestamped segments that start inside the speech."""
        tokenizer = self._tokenizer
        kept: list[int] = []
        current: list[int] = []
        segment_start: float | None = None
        for token in tokens:
            if token < tokenizer.timestamp_begin:
                current.append(token)
                continue
            at = (token - tokenizer.timestamp_begin) * 0.02
            if segment_start is None:
                segment_start = at
                continue
            if segment_start < duration_s - SEGMENT_START_MARGIN_S:
                kept.extend(current)
            segment_start, current = None, []
        if current and (segment_start or 0.0) < duration_s - SEGMENT_START_MARGIN_S:
            kept.extend(current)
        return str(tokenizer.decode(kept)).strip()

    def warm_up(self) -> None:
        self.decode(np.zeros(SAMPLE_RATE, dtype=np.float32))
