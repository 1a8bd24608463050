"""The gRPC face of the tts service: one Synthesize stream per session, one task per turn.

Text deltas of a turn are chunked as they arrive; each chunk is synthesised on a worker thread
and its audio is resampled to the session's rate and sent in fixed frames straight away, so
the next chunk is being synthesised while the client plays the current one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
from opentelemetry import trace

from services.tts.chunking import SpeakableChunker
from services.tts.engine import SpeechEngine
from services.tts.normalize import normalize_for_speech
from voice.audio import FrameBuffer, Resampler
from voice.telemetry import context_from_message
from voice.v1 import audio_pb2, tts_pb2, tts_pb2_grpc

log = logging.getLogger(__name__)
tracer = trace.get_tracer("voice.tts")

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000
_FLUSH = None


@dataclass(frozen=True)
class ChunkingConfig:
    first_min_words: int
    first_max_words: int
    frame_ms: int


@dataclass
class _Turn:
    turn_id: str
    text: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class TextToSpeechServicer(tts_pb2_grpc.TextToSpeechServiceServicer):
    def __init__(self, engine: SpeechEngine, config: ChunkingConfig, workers: int = 2) -> None:
        self._engine = engine
        self._config = config
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="synth")
        self.active_streams = 0

    async def Synthesize(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[tts_pb2.SynthesizeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None:
            return
        if first.WhichOneof("request") != "config":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a config"
            )
        rate = first.config.sample_rate or self._engine.sample_rate
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"sample_rate {rate} is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]",
            )
        out: asyncio.Queue[tts_pb2.SynthesizeResponse | None] = asyncio.Queue()
        errors: list[str] = []
        reader = asyncio.create_task(self._read(request_iterator, rate, out, errors))
        self.active_streams += 1
        log.info("stream opened (session %s, %d Hz)", first.config.session_id, rate)
        try:
            while (response := await out.get()) is not None:
                yield response
            if errors:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, errors[0])
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self.active_streams -= 1
            log.info("stream closed (session %s)", first.config.session_id)

    async def _read(
        self,
        requests: AsyncIterator[tts_pb2.SynthesizeRequest],
        rate: int,
        out: asyncio.Queue[tts_pb2.SynthesizeResponse | None],
        errors: list[str],
    ) -> None:
        turns: dict[str, _Turn] = {}
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "text":
                    turn = turns.get(request.text.turn_id)
                    if turn is None:
                        turn = _Turn(request.text.turn_id)
                        turns[turn.turn_id] = turn
                        turn.task = asyncio.create_task(
                            self._speak(turn, request.text.trace_context, rate, out)
                        )
                        turn.task.add_done_callback(_forget(turns, turn.turn_id))
                    turn.text.put_nowait(request.text.text)
                elif kind == "flush":
                    turn = turns.get(request.flush.turn_id)
                    if turn is not None:
                        turn.text.put_nowait(_FLUSH)
                    else:
                        out.put_nowait(_end(request.flush.turn_id))
                elif kind == "cancel":
                    turn = turns.get(request.cancel.turn_id)
                    if turn is not None and turn.task is not None:
                        turn.task.cancel()
                else:
                    errors.append(f"unexpected message '{kind}' after the config")
                    break
            pending = [t.task for t in turns.values() if t.task is not None]
            await asyncio.gather(*pending, return_exceptions=True)
        finally:
            for turn in list(turns.values()):
                if turn.task is not None:
                    turn.task.cancel()
            out.put_nowait(None)

    async def _speak(
        self,
        turn: _Turn,
        trace_context: audio_pb2.TraceContext,
        rate: int,
        out: asyncio.Queue[tts_pb2.SynthesizeResponse | None],
    ) -> None:
        chunker = SpeakableChunker(self._config.first_min_words, self._config.first_max_words)
        resampler = Resampler(self._engine.sample_rate, rate)
        framer = FrameBuffer(rate, self._config.frame_ms)
        parent = context_from_message(trace_context)
        with tracer.start_as_current_span("tts.synthesize", context=parent) as span:
            span.set_attribute("voice.turn_id", turn.turn_id)
            span.set_attribute("tts.engine", self._engine.name)
            span.add_event("tts_start")
            out.put_nowait(
                tts_pb2.SynthesizeResponse(
                    start=tts_pb2.AudioStart(
                        turn_id=turn.turn_id, sample_rate=rate, engine=self._engine.name
                    )
                )
            )
            first_audio = True
            try:
                while True:
                    delta = await turn.text.get()
                    chunks = chunker.push(delta) if delta is not _FLUSH else chunker.flush()
                    for chunk in chunks:
                        text = normalize_for_speech(chunk)
                        if not text:
                            continue
                        pcm = await self._synthesize(text)
                        frames = framer.push(resampler.process(pcm))
                        if first_audio and frames:
                            span.add_event("first_audio")
                            first_audio = False
                        for index, frame in enumerate(frames):
                            out.put_nowait(
                                _audio(turn.turn_id, frame, rate, text if index == 0 else "")
                            )
                    if delta is _FLUSH:
                        break
                tail = [*framer.push(resampler.process(b"", last=True)), framer.drain()]
                for frame in tail:
                    if frame:
                        out.put_nowait(_audio(turn.turn_id, frame, rate, ""))
                out.put_nowait(_end(turn.turn_id))
            except asyncio.CancelledError:
                span.add_event("interrupted")
                out.put_nowait(_end(turn.turn_id, cancelled=True))
                raise
            except Exception as error:
                log.exception("turn %s: synthesis failed", turn.turn_id)
                span.record_exception(error)
                out.put_nowait(_end(turn.turn_id, error=str(error)))

    async def _synthesize(self, text: str) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: b"".join(self._engine.synthesize(text))
        )

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _forget(turns: dict[str, _Turn], turn_id: str) -> Callable[[object], None]:
    """A done-callback that drops a finished turn from the stream's table."""

    def forget(_task: object) -> None:
        turns.pop(turn_id, None)

    return forget


def _audio(turn_id: str, pcm: bytes, rate: int, text: str) -> tts_pb2.SynthesizeResponse:
    return tts_pb2.SynthesizeResponse(
        audio=tts_pb2.SynthesizedAudio(
            turn_id=turn_id, audio=audio_pb2.AudioChunk(pcm=pcm, sample_rate=rate), text=text
        )
    )


def _end(turn_id: str, *, cancelled: bool = False, error: str = "") -> tts_pb2.SynthesizeResponse:
    return tts_pb2.SynthesizeResponse(
        end=tts_pb2.AudioEnd(turn_id=turn_id, cancelled=cancelled, error=error)
    )
