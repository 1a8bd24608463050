"""One recognition stream: VAD endpointing, streaming partials, and a final transcript per turn.

Audio is fed through the voice activity detector window by window.

- **Partials**: while the user speaks, the audio after the committed point (see
  :mod:`services.stt.utterance`) is decoded about every ``partial_interval``, when the shared
  pool has a worker to spare; each partial carries the prefix successive decodes agree on.
- **Pause**: when speech pauses, the decode of the utterance so far starts at once (a partial
  in flight that already covers all the speech is adopted instead; any other is cancelled, so
  the pause never waits behind it). Its text is sent as a non-final ``at_pause`` transcript.
- **End of turn**: if the silence lasts long enough and no speech came in between, the pause
  decode *is* the final transcript (same text), so the text is ready about when the turn ends.
  If the user spoke on, the pause decode's text is committed with the audio it covered and
  later decodes start after it.

Model work runs on the decode pool's threads and VAD on an executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.stt.endpointing import Boundary, EndpointConfig, Endpointer
from services.stt.engine import (
    MODEL_SAMPLE_RATE,
    AudioInput,
    DecodeCancelledError,
    FlushInput,
    ResetInput,
    SpeechEvent,
    SpeechEventKind,
    StreamInput,
    Transcript,
    TranscriptEvent,
    VoiceActivityDetector,
)
from services.stt.pool import DecodePool
from services.stt.utterance import DecodeJob, Utterance, common_word_prefix

__all__ = ["PREROLL_S", "StreamConfig", "TranscriptionStream", "common_word_prefix"]

log = logging.getLogger(__name__)

PREROLL_S = 0.3
# Silence inside speech after which a partial starts without waiting for its interval.
ANTICIPATE_S = 0.064
ROLLING_WINDOW_S = 6.0


@dataclass(frozen=True)
class StreamConfig:
    endpoint: EndpointConfig
    partial_interval_s: float
    # Audio after the committed point beyond which agreed segments are committed.
    rolling_window_s: float = ROLLING_WINDOW_S
    # Silence inside speech after which a partial starts at once (0: never).
    anticipate_s: float = ANTICIPATE_S


class TranscriptionStream:
    """Turns one session's audio into speech events and transcripts."""

    def __init__(
        self,
        pool: DecodePool,
        vad_factory: Callable[[], VoiceActivityDetector],
        config: StreamConfig,
        vad_executor: Executor,
        language: str = "",
    ) -> None:
        self._pool = pool
        # The language every decode of this stream is asked for ("": the decoder's default).
        self._language = language
        self._vad = vad_factory()
        self._config = config
        self._vad_executor = vad_executor
        self._endpointer = Endpointer(config.endpoint)
        self._events: asyncio.Queue[TranscriptEvent | None] = asyncio.Queue()
        self._pending = np.zeros(0, dtype=np.float32)
        self._processed = 0
        self._preroll: deque[tuple[np.ndarray, float]] = deque()
        self._utterance: Utterance | None = None
        self._last_partial_s = 0.0
        self._partial: DecodeJob | None = None
        # The latest partial of this utterance, running or done: it may serve as the pause decode.
        self._latest: DecodeJob | None = None
        # The decode started at this utterance's pause (None while the user speaks on).
        self._pause_decode: DecodeJob | None = None
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
            for job in (self._partial, self._pause_decode):
                if job is not None:
                    job.cancel.set()
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
            if (was_speaking or self._endpointer.in_speech) and self._utterance is not None:
                self._utterance.append(samples_window, probability)
            else:
                self._remember_preroll(samples_window, probability)
            if boundary is not None:
                self._on_boundary(boundary)
            elif self._endpointer.in_speech:
                self._after_speech_window()

    def _remember_preroll(self, window: np.ndarray, probability: float) -> None:
        self._preroll.append((window, probability))
        while len(self._preroll) * len(window) > PREROLL_S * MODEL_SAMPLE_RATE:
            self._preroll.popleft()

    def _on_boundary(self, boundary: Boundary) -> None:
        kind = boundary.kind
        if kind is SpeechEventKind.SPEECH_STARTED:
            self._begin_utterance(boundary)
            self._emit_event(boundary)
        elif kind is SpeechEventKind.SPEECH_RESUMED:
            self._on_resumed()
            self._emit_event(boundary)
        elif kind is SpeechEventKind.PAUSE:
            self._emit_event(boundary)
            self._on_pause(boundary)
        else:
            self._emit_event(boundary)
            self._finish_utterance(boundary)

    def _begin_utterance(self, boundary: Boundary) -> None:
        # The windows that made speech start are in the preroll: the utterance takes them all.
        held = sum(len(w) for w, _ in self._preroll)
        utterance = Utterance(uuid.uuid4().hex[:12], self._processed - held)
        for window, probability in self._preroll:
            utterance.append(window, probability)
        self._preroll.clear()
        self._utterance = utterance
        self._last_partial_s = boundary.time_s

    def _emit_event(self, boundary: Boundary) -> None:
        starts = (SpeechEventKind.SPEECH_STARTED, SpeechEventKind.SPEECH_RESUMED)
        speech_end = 0.0 if boundary.kind in starts else boundary.speech_time_s
        utterance_id = self._utterance.id if self._utterance is not None else ""
        self._events.put_nowait(
            SpeechEvent(boundary.kind, utterance_id, boundary.time_s, speech_end)
        )

    # ----------------------------------------------------------------- decodes

    def _voiced_end(self) -> int:
        return round(self._endpointer.last_voiced_end_s * MODEL_SAMPLE_RATE)

    def _urgent_decode(self, utterance: Utterance) -> DecodeJob:
        start, end = utterance.committed_at, utterance.end
        future = self._pool.submit(utterance.audio(start, end), language=self._language)
        return DecodeJob(start, end, utterance.committed_text, future)

    def _after_speech_window(self) -> None:
        utterance = self._utterance
        if utterance is None or self._partial is not None or self._pause_decode is not None:
            return
        # As a silence begins, decode at once: if it becomes a pause, that decode covers all
        # the speech and is taken as the pause decode, already well under way.
        silence_s = self._endpointer.silence_s + 1e-9
        window_s = self._vad.window_samples / MODEL_SAMPLE_RATE
        anticipate_s = self._config.anticipate_s
        anticipate = 0 < anticipate_s <= silence_s < anticipate_s + window_s
        if not anticipate and self._now_s - self._last_partial_s < self._config.partial_interval_s:
            return
        start, end = utterance.committed_at, utterance.end
        cancel = threading.Event()
        future = self._pool.try_partial(utterance.audio(start, end), cancel, self._language)
        if future is None:
            return  # the pool has no worker to spare: try again at the next window
        job = DecodeJob(start, end, utterance.committed_text, future, cancel)
        self._last_partial_s = self._now_s
        self._partial = self._latest = job
        self._spawn(self._publish_partial(job, utterance))

    def _on_pause(self, boundary: Boundary) -> None:
        utterance = self._utterance
        if utterance is None:
            return
        partial, self._partial = self._partial, None
        latest = self._latest
        if latest is not None and latest.end >= self._voiced_end() and _usable(latest):
            pause_decode = latest  # it read all the speech already: no need to decode again
        else:
            pause_decode = self._urgent_decode(utterance)
        if partial is not None and partial is not pause_decode:
            partial.cancel.set()
        self._pause_decode = pause_decode
        self._spawn(self._publish_pause(pause_decode, utterance, boundary))

    def _on_resumed(self) -> None:
        """The user spoke on: the pause decode becomes a commit of the audio it covered."""
        pause_decode, self._pause_decode = self._pause_decode, None
        if pause_decode is not None and self._utterance is not None:
            self._spawn(self._commit_when_done(pause_decode, self._utterance))

    async def _commit_when_done(self, job: DecodeJob, utterance: Utterance) -> None:
        with contextlib.suppress(Exception):
            await asyncio.shield(job.future)
            if not job.future.exception():
                utterance.commit(job, job.text(), job.end)

    async def _publish_pause(
        self, job: DecodeJob, utterance: Utterance, boundary: Boundary
    ) -> None:
        """The utterance so far, decoded at the pause: lets the caller start thinking early."""
        try:
            await asyncio.shield(job.future)
            text = job.text()
        except Exception:
            return  # the final decode reports any failure
        if self._pause_decode is not job or self._utterance is not utterance or not text:
            return  # the user went on, or the turn already ended and the final has this text
        self._events.put_nowait(
            Transcript(
                utterance_id=utterance.id,
                text=text,
                final=False,
                stable_text=text,
                speech_start_s=self._endpointer.speech_start_s,
                speech_end_s=boundary.speech_time_s,
                decode_ms=job.elapsed_ms,
                at_pause=True,
            )
        )

    async def _publish_partial(self, job: DecodeJob, utterance: Utterance) -> None:
        try:
            await asyncio.shield(job.future)
            text = job.text()
        except DecodeCancelledError:
            return
        finally:
            if self._partial is job:
                self._partial = None
        if (
            self._utterance is not utterance
            or job.cancel.is_set()
            or self._pause_decode is not None
            or not text
        ):
            return
        stable = utterance.agree(text, job.base_text)
        utterance.commit_agreed_segments(job, stable, self._config.rolling_window_s)
        self._events.put_nowait(
            Transcript(
                utterance_id=utterance.id,
                text=text,
                final=False,
                stable_text=stable,
                speech_start_s=self._endpointer.speech_start_s,
                speech_end_s=self._endpointer.last_voiced_end_s,
                decode_ms=job.elapsed_ms,
            )
        )

    def _finish_utterance(self, boundary: Boundary) -> None:
        utterance = self._utterance
        if utterance is None:
            return
        # The pause decode is the final one, unless speech came after the audio it read.
        final = self._pause_decode
        if final is None or final.end < self._voiced_end():
            final = self._urgent_decode(utterance)
        if self._partial is not None and self._partial is not final:
            self._partial.cancel.set()
        speech_start = self._endpointer.speech_start_s
        self._spawn(self._publish_final(final, utterance, speech_start, boundary))
        self._start_silence()

    async def _publish_final(
        self, job: DecodeJob, utterance: Utterance, start_s: float, boundary: Boundary
    ) -> None:
        try:
            await asyncio.shield(job.future)
            text = job.text()
        except Exception:
            log.exception("final decode of utterance %s failed", utterance.id)
            text = ""
        self._events.put_nowait(
            Transcript(
                utterance_id=utterance.id,
                text=text,
                final=True,
                stable_text=text,
                speech_start_s=start_s,
                speech_end_s=boundary.speech_time_s,
                decode_ms=job.elapsed_ms,
            )
        )

    def _start_silence(self) -> None:
        self._utterance = None
        self._pause_decode = None
        self._partial = self._latest = None
        self._preroll.clear()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)


def _usable(job: DecodeJob) -> bool:
    """Not given up, and not failed."""
    if job.cancel.is_set():
        return False
    return not job.future.done() or (not job.future.cancelled() and not job.future.exception())


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("decode failed", exc_info=task.exception())
