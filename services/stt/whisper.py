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
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import _LANGUAGE_CODES, Tokenizer

from services.stt.batcher import BatchPolicy, DecodeRequest
from services.stt.engine import DecodeCancelledError, Decoding, Segment
from services.stt.settings import SttSettings
from voice.models import whisper_model_path

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
FULL_WINDOW_S = 30.0
TRAILING_SILENCE_S = 1.0
SEGMENT_START_MARGIN_S = 0.1
# Segments the model itself believes are not speech, and low-confidence ones, are dropped.
NO_SPEECH_PROBABILITY = 0.6
# Less audio than this is not worth a decode (and invites a hallucination).
MIN_AUDIO_S = 0.1
MIN_AVG_LOGPROB = -1.0


def max_tokens(duration_s: float) -> int:
    """The generation limit of a short-window decode of ``duration_s`` of speech."""
    return int(16 + 8 * duration_s)


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
    """One loaded model, shared by every stream; ``workers`` decodes can run at once."""

    def __init__(self, settings: SttSettings, *, workers: int = 2) -> None:
        # An embedded model that arrives in parts (base) is assembled on first use.
        path = whisper_model_path(settings.model, settings.common.cache_dir, assemble=True)
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
        self.device = choice
        self.name = f"whisper {settings.model}"
        self._language = settings.language or None
        self._window_s = settings.encoder_window_s
        # Read by the decode pool: urgent decodes due together share one batch (off: 1).
        self.batch_policy = BatchPolicy(settings.max_batch, settings.batch_window_ms / 1000)
        # What a stream may ask for in its config: an English-only model (tiny.en) knows one.
        self.english_only = not self._model.model.is_multilingual
        self.languages = frozenset({"en"} if self.english_only else _LANGUAGE_CODES)
        self._tokenizers: dict[str, Tokenizer] = {}
        self._tokenizer = self._tokenizer_for(self._language or "en")
        self.description = (
            f"whisper {settings.model} on {choice.device} ({choice.compute_type}), "
            f"encoder window {self._window_s:g}s"
        )
        if self.batch_policy.enabled:
            self.description += (
                f", batches of up to {settings.max_batch} (window {settings.batch_window_ms} ms)"
            )
        log.info("loaded %s in %.2fs", self.description, time.perf_counter() - started)

    def _tokenizer_for(self, language: str) -> Tokenizer:
        tokenizer = self._tokenizers.get(language)
        if tokenizer is None:  # two threads may both make one: the same, and cheap
            tokenizer = Tokenizer(
                self._model.hf_tokenizer,
                self._model.model.is_multilingual,
                task="transcribe",
                language=language,
            )
            self._tokenizers[language] = tokenizer
        return tokenizer

    def decode(
        self, samples: np.ndarray, cancel: threading.Event | None = None, language: str = ""
    ) -> Decoding:
        """``language``: one of ``languages`` for this decode ("": STT_LANGUAGE's)."""
        duration_s = len(samples) / SAMPLE_RATE
        if duration_s < MIN_AUDIO_S:
            return Decoding("")
        if self._window_s >= FULL_WINDOW_S or duration_s + TRAILING_SILENCE_S > self._window_s:
            return self._decode_full(samples, cancel, language or self._language)
        return self._decode_compact(samples, duration_s, cancel, language)

    def _decode_full(
        self, samples: np.ndarray, cancel: threading.Event | None, language: str | None
    ) -> Decoding:
        segments, _info = self._model.transcribe(
            samples,
            language=language,
            beam_size=1,
            best_of=1,
            temperature=0.0,
            condition_on_previous_text=False,
            without_timestamps=True,
            vad_filter=False,
            no_speech_threshold=NO_SPEECH_PROBABILITY,
            log_prob_threshold=MIN_AVG_LOGPROB,
        )
        kept: list[Segment] = []
        for segment in segments:  # a generator: each step decodes the next 30 s
            _check(cancel)
            text = segment.text.strip()
            unlikely = segment.avg_logprob < MIN_AVG_LOGPROB
            if text and not (segment.no_speech_prob > NO_SPEECH_PROBABILITY and unlikely):
                kept.append(Segment(segment.start, segment.end, text))
        return Decoding(" ".join(s.text for s in kept), tuple(kept))

    def _decode_compact(
        self, samples: np.ndarray, duration_s: float, cancel: threading.Event | None, language: str
    ) -> Decoding:
        batch = self._compact_features(samples)[None]
        _check(cancel)
        # The encoder is most of the cost; a cancelled partial stops between it and the decoder.
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        _check(cancel)
        tokenizer = self._tokenizer_for(language) if language else self._tokenizer
        result = self._model.model.generate(
            encoded,
            [list(tokenizer.sot_sequence)],
            beam_size=1,
            max_length=max_tokens(duration_s),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )[0]
        return self._compact_result(
            tokenizer, result.no_speech_prob, result.sequences_ids[0], duration_s
        )

    def _compact_features(self, samples: np.ndarray) -> np.ndarray:
        """The mel features of ``samples`` padded to the short window: ``[n_mels, frames]``."""
        window_samples = int(self._window_s * SAMPLE_RATE)
        padded = np.zeros(window_samples, dtype=np.float32)
        padded[: len(samples)] = samples
        features = self._model.feature_extractor(padded)
        frames = min(features.shape[-1], int(self._window_s * 100))
        frames -= frames % 2
        return np.ascontiguousarray(features[:, :frames], dtype=np.float32)

    def _compact_result(
        self, tokenizer: Tokenizer, no_speech_prob: float, tokens: list[int], duration_s: float
    ) -> Decoding:
        # On a short window the model's own no-speech probability alone is a good guard: noise
        # and silence that got past the VAD score 0.7 to 1.0 ("you", "I'm gonna be right
        # back."), speech in the test corpus at most 0.2.
        if no_speech_prob > NO_SPEECH_PROBABILITY:
            return Decoding("")
        return self._speech_segments(tokenizer, tokens, duration_s)

    def batchable(self, samples: np.ndarray) -> bool:
        """Whether this decode can share a batch: audio that fits the short encoder window."""
        duration_s = len(samples) / SAMPLE_RATE
        fits = duration_s + TRAILING_SILENCE_S <= self._window_s < FULL_WINDOW_S
        return fits and duration_s >= MIN_AUDIO_S

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Decoding | BaseException]:
        """Decode several utterances as one CTranslate2 batch (encoder and decoder), each with
        the same result as its own :meth:`decode`. Requests that cannot share a batch (see
        :meth:`batchable`, or another language than the first's) are decoded one by one; a
        cancelled request gives :class:`DecodeCancelledError`, the others go on."""
        outcomes: list[Decoding | BaseException | None] = [None] * len(requests)
        language = requests[0].language if requests else ""
        together = [
            i
            for i, request in enumerate(requests)
            if request.language == language and self.batchable(request.samples)
        ]
        if len(together) < 2:
            together = []
        for i, request in enumerate(requests):
            if i not in together:
                outcomes[i] = self._outcome(request)
        live = [i for i in together if not _cancelled(requests[i])]
        for i in together:
            if i not in live:
                outcomes[i] = DecodeCancelledError()
        if live:
            try:
                for i, decoding in zip(
                    live, self._decode_compact_batch(requests, live), strict=True
                ):
                    outcomes[i] = decoding
            except Exception as error:  # each stream is told, and logs it
                for i in live:
                    outcomes[i] = error
        return [DecodeCancelledError() if o is None else o for o in outcomes]

    def _outcome(self, request: DecodeRequest) -> Decoding | BaseException:
        try:
            return self.decode(request.samples, request.cancel, request.language)
        except Exception as error:  # DecodeCancelledError included
            return error

    def _decode_compact_batch(
        self, requests: Sequence[DecodeRequest], indexes: list[int]
    ) -> list[Decoding | BaseException]:
        durations = [len(requests[i].samples) / SAMPLE_RATE for i in indexes]
        batch = np.stack([self._compact_features(requests[i].samples) for i in indexes])
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(batch), to_cpu=False)
        if all(_cancelled(requests[i]) for i in indexes):
            raise DecodeCancelledError
        language = requests[indexes[0]].language
        tokenizer = self._tokenizer_for(language) if language else self._tokenizer
        limits = [max_tokens(d) for d in durations]
        results = self._model.model.generate(
            encoded,
            [list(tokenizer.sot_sequence)] * len(indexes),
            beam_size=1,
            max_length=max(limits),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
        )
        outcomes: list[Decoding | BaseException] = []
        for i, duration_s, limit, result in zip(indexes, durations, limits, results, strict=True):
            if _cancelled(requests[i]):
                outcomes.append(DecodeCancelledError())
                continue
            # Greedy search steps each item alone: cut it where its own decode would have
            # stopped, and it is the same sequence. CTranslate2 (4.8) gives at most
            # max_length // 2 tokens for Whisper (measured on tiny.en and base, whose prompts
            # are 1 and 3 tokens long; the integration test checks it on the corpus).
            tokens = result.sequences_ids[0][: limit // 2]
            outcomes.append(
                self._compact_result(tokenizer, result.no_speech_prob, tokens, duration_s)
            )
        return outcomes

    @staticmethod
    def _speech_segments(tokenizer: Tokenizer, tokens: list[int], duration_s: float) -> Decoding:
        """The timestamped segments that start inside the speech."""
        segments: list[Segment] = []
        current: list[int] = []
        segment_start: float | None = None

        def close(end_s: float) -> None:
            start = segment_start or 0.0
            text = str(tokenizer.decode(current)).strip()
            if text and start < duration_s - SEGMENT_START_MARGIN_S:
                segments.append(Segment(start, min(end_s, duration_s), text))

        for token in tokens:
            if token < tokenizer.timestamp_begin:
                current.append(token)
                continue
            at = (token - tokenizer.timestamp_begin) * 0.02
            if segment_start is None:
                segment_start = at
                continue
            close(at)
            segment_start, current = None, []
        if current:
            close(duration_s)
        return Decoding(" ".join(s.text for s in segments), tuple(segments))

    def warm_up(self) -> None:
        self.decode(np.zeros(SAMPLE_RATE, dtype=np.float32))


def _cancelled(request: DecodeRequest) -> bool:
    return request.cancel is not None and request.cancel.is_set()


def _check(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise DecodeCancelledError


def word_end_times(decoder: WhisperDecoder, samples: np.ndarray) -> list[tuple[str, float]]:
    """Each word of an offline decode (standard window, word timestamps) with when it ends, in
    seconds: the benchmark's reference for when a word was spoken."""
    segments, _info = decoder._model.transcribe(
        samples, language=decoder._language, beam_size=1, word_timestamps=True, vad_filter=False
    )
    return [(word.word, word.end) for segment in segments for word in segment.words or []]
