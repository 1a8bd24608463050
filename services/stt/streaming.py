"""One recognition stream: VAD endpointing, partial transcripts, and a final transcript per turn.

Audio is fed through the voice activity detector window by window. While the user speaks, the
utterance so far is decoded again every ``partial_interval`` for partial transcripts. When speech
pauses, the final decode starts at once (speculatively); if the silence then lasts long enough
to end the turn and no speech came in between, that decode is the final transcript, so the
turn's text is ready about when the turn ends rather than a decode later.

Model work runs on executors, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from services.stt.endpointing import Boundary, EndpointConfig, Endpointer
from services.stt.engine import (
    MODEL_SAMPLE_RATE,
    AudioInput,
    Decoder,
    FlushInput,
    ResetInput,
    SpeechEvent,
    SpeechEventKind,
    StreamInput,
    Transcript,
    TranscriptEvent,
    VoiceActivityDetector,
)

log = logging.getLogger(__name__)

PREROLL_S = 0.3


@dataclass(frozen=True)
class StreamConfig:
    endpoint: EndpointConfig
    partial_interval_s: float


def common_word_prefix(a: str, b: str) -> str:
    """The words two decodes agree on, from the start (local agreement)."""
    agreed: list[str] = []
    for left, right in zip(a.split(), b.split(), strict=False):
        if left.strip(".,!?;:").lower() != right.strip(".,!?;:").lower():
            break
        agreed.append(right)
    return " ".join(agreed)


@dataclass
class _Decode:
    task: asyncio.Future[str]
    covers_until_s: float
    started: float


class TranscriptionStream:
    """Turns one session's audio into speech events and transcripts."""

    def __init__(
        self,
        decoder: Decoder,
        vad_factory: Callable[[], VoiceActivityDetector],
        config: StreamConfig,
        decode_executor: Executor,
        vad_executor: Executor,
    ) -> None:
        self._decoder = decoder
        self._vad = vad_factory()
        self._config = config
        self._decode_executor = decode_executor
        self._vad_executor = vad_executor
        self._endpointer = Endpointer(config.endpoint)
        self._events: asyncio.Queue[TranscriptEvent | None] = asyncio.Queue()
        self._pending = np.zeros(0, dtype=np.float32)
        self._processed = 0
        self._preroll: deque[np.ndarray] = deque()
        self._utterance: list[np.ndarray] = []
        self._utterance_id = ""
        self._last_partial_s = 0.0
        self._last_partial_text = ""
        self._partial: _Decode | None = None
        self._speculative: _Decode | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def transcribe(
        self, inputs: AsyncIterator[StreamInput]
    ) -> AsyncIterator[TranscriptEvent]:
        pump = asyncio.create_task(self._pump(inputs))
        try:
            while True:
                event = await self._events.get()
                if event is None:
                    break
                yield event
            await pump
        finally:
            pump.cancel()
            for task in list(self._tasks):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pump

    @property
    def _now_s(self) -> float:
        return self._processed / MODEL_SAMPLE_RATE

    async def _pump(self, inputs: AsyncIterator[StreamInput]) -> None:
        try:
            async for item in inputs:
                if isinstance(item, AudioInput):
                    await self._feed(item.samples)
                elif isinstance(item, FlushInput):
                    boundary = self._endpointer.force_end(self._now_s)
                    if boundary is not None:
                        self._on_boundary(boundary)
                elif isinstance(item, ResetInput):
                    self._endpointer.force_end(self._now_s)
                    self._start_silence()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._events.put_nowait(None)

    async def _feed(self, samples: np.ndarray) -> None:
        window = self._vad.window_samples
        self._pending = np.concatenate([self._pending, samples])
        count = len(self._pending) // window
        if count == 0:
            return
        windows = [self._pending[i * window : (i + 1) * window] for i in range(count)]
        self._pending = self._pending[count * window :]
        loop = asyncio.get_running_loop()
        probabilities = await loop.run_in_executor(
            self._vad_executor, lambda: [self._vad.probability(w) for w in windows]
        )
        window_s = window / MODEL_SAMPLE_RATE
        for samples_window, probability in zip(windows, probabilities, strict=True):
            start_s = self._now_s
            self._processed += len(samples_window)
            was_speaking = self._endpointer.in_speech
            boundary = self._endpointer.update(probability, start_s, window_s)
            if was_speaking or self._endpointer.in_speech:
                self._utterance.append(samples_window)
            else:
                self._remember_preroll(samples_window)
            if boundary is not None:
                self._on_boundary(boundary)
            elif self._endpointer.in_speech:
                self._after_speech_window(probability)

    def _remember_preroll(self, window: np.ndarray) -> None:
        self._preroll.append(window)
        while sum(len(w) for w in self._preroll) > PREROLL_S * MODEL_SAMPLE_RATE:
            self._preroll.popleft()

    def _on_boundary(self, boundary: Boundary) -> None:
        if boundary.kind is SpeechEventKind.SPEECH_STARTED:
            self._utterance_id = uuid.uuid4().hex[:12]
            self._utterance = [*self._preroll, *self._utterance]
            self._preroll.clear()
            self._last_partial_s = boundary.time_s
            self._last_partial_text = ""
            self._emit_event(boundary)
        elif boundary.kind is SpeechEventKind.SPEECH_RESUMED:
            self._speculative = None  # the pause decode no longer covers the utterance
            self._emit_event(boundary)
        elif boundary.kind is SpeechEventKind.PAUSE:
            self._emit_event(boundary)
            self._speculative = self._start_decode()
            self._spawn(self._publish_pause(self._speculative, self._utterance_id, boundary))
        else:
            self._emit_event(boundary)
            self._finish_utterance(boundary)

    def _emit_event(self, boundary: Boundary) -> None:
        starts = (SpeechEventKind.SPEECH_STARTED, SpeechEventKind.SPEECH_RESUMED)
        speech_end = 0.0 if boundary.kind in starts else boundary.speech_time_s
        self._events.put_nowait(
            SpeechEvent(boundary.kind, self._utterance_id, boundary.time_s, speech_end)
        )

    def _after_speech_window(self, probability: float) -> None:
        speculative = self._speculative
        if (
            speculative is not None
            and self._endpointer.last_voiced_end_s > speculative.covers_until_s
        ):
            self._speculative = None  # the user went on: that decode is stale
        if self._partial is not None or self._speculative is not None:
            return
        if self._now_s - self._last_partial_s < self._config.partial_interval_s:
            return
        self._last_partial_s = self._now_s
        decode = self._start_decode()
        self._partial = decode
        self._spawn(self._publish_partial(decode, self._utterance_id))

    def _start_decode(self) -> _Decode:
        audio = np.concatenate(self._utterance) if self._utterance else np.zeros(0, np.float32)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._decode_executor, self._decoder.decode, audio)
        return _Decode(future, self._now_s, time.perf_counter())

    async def _publish_pause(self, decode: _Decode, utterance_id: str, boundary: Boundary) -> None:
        """The utterance so far, decoded at the pause: lets the caller start thinking early."""
        try:
            text = await decode.task
        except Exception:
            return  # the final decode reports the failure
        if self._speculative is not decode or utterance_id != self._utterance_id or not text:
            return  # the user went on, or the turn already ended and the final has this text
        self._events.put_nowait(
            Transcript(
                utterance_id=utterance_id,
                text=text,
                final=False,
                stable_text=text,
                speech_start_s=self._endpointer.speech_start_s,
                speech_end_s=boundary.speech_time_s,
                decode_ms=(time.perf_counter() - decode.started) * 1000,
                at_pause=True,
            )
        )

    async def _publish_partial(self, decode: _Decode, utterance_id: str) -> None:
        try:
            text = await decode.task
        finally:
            if self._partial is decode:
                self._partial = None
        if utterance_id != self._utterance_id or not self._endpointer.in_speech or not text:
            return
        stable = common_word_prefix(self._last_partial_text, text)
        self._last_partial_text = text
        self._events.put_nowait(
            Transcript(
                utterance_id=utterance_id,
                text=text,
                final=False,
                stable_text=stable,
                speech_start_s=self._endpointer.speech_start_s,
                speech_end_s=self._endpointer.last_voiced_end_s,
                decode_ms=(time.perf_counter() - decode.started) * 1000,
            )
        )

    def _finish_utterance(self, boundary: Boundary) -> None:
        speculative = self._speculative
        if speculative is None or boundary.speech_time_s > speculative.covers_until_s:
            speculative = self._start_decode()
        speech_start = self._endpointer.speech_start_s
        self._spawn(
            self._publish_final(
                speculative, self._utterance_id, speech_start, boundary.speech_time_s
            )
        )
        self._start_silence()

    async def _publish_final(
        self, decode: _Decode, utterance_id: str, start_s: float, end_s: float
    ) -> None:
        try:
            text = await decode.task
        except Exception:
            log.exception("final decode of utterance %s failed", utterance_id)
            text = ""
        self._events.put_nowait(
            Transcript(
                utterance_id=utterance_id,
                text=text,
                final=True,
                stable_text=text,
                speech_start_s=start_s,
                speech_end_s=end_s,
                decode_ms=(time.perf_counter() - decode.started) * 1000,
            )
        )

    def _start_silence(self) -> None:
        self._utterance = []
        self._speculative = None
        self._partial = None
        self._preroll.clear()

    def _spawn(self, coroutine: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("decode failed", exc_info=task.exception())
