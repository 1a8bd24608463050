"""The gRPC face of the tts service: one Synthesize stream per session, one task per turn.

The servicer only translates: requests into per-turn text queues and tasks (``speaker.py``
does the speaking), the turn's events into protocol messages. A cancelled turn sends nothing
more: its task is cancelled (which stops the engine at once) and any of its audio still waiting
to go out is dropped, so the next message for that turn is its ``AudioEnd(cancelled)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
from opentelemetry import trace

from services.tts.chain import EngineChain
from services.tts.engine import SpeechEngine
from services.tts.speaker import ChunkingConfig, TurnSpeaker
from voice.errors import InvalidRequestError
from voice.load import LoadTracker, PendingWork
from voice.streams import open_stream, sample_rate
from voice.telemetry import context_from_message
from voice.v1 import audio_pb2, tts_pb2, tts_pb2_grpc

__all__ = ["ChunkingConfig", "TextToSpeechServicer"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer("voice.tts")

Outbox = asyncio.Queue[tts_pb2.SynthesizeResponse | None]


@dataclass
class _Output:
    """A turn's events as protocol messages on the stream's outbox."""

    turn_id: str
    rate: int
    outbox: Outbox
    started: bool = False
    ended: bool = False
    # The turn's wait for its first audio, in the load report (voice/load.py).
    pending: PendingWork | None = None

    def start(self, engine: str) -> None:
        self.started = True
        start = tts_pb2.AudioStart(turn_id=self.turn_id, sample_rate=self.rate, engine=engine)
        self.outbox.put_nowait(tts_pb2.SynthesizeResponse(start=start))

    def audio(self, pcm: bytes, text: str) -> None:
        if self.pending is not None:
            self.pending.answered()
        chunk = audio_pb2.AudioChunk(pcm=pcm, sample_rate=self.rate)
        audio = tts_pb2.SynthesizedAudio(turn_id=self.turn_id, audio=chunk, text=text)
        self.outbox.put_nowait(tts_pb2.SynthesizeResponse(audio=audio))

    def end(self, *, cancelled: bool = False, error: str = "") -> None:
        self.ended = True
        end = tts_pb2.AudioEnd(turn_id=self.turn_id, cancelled=cancelled, error=error)
        self.outbox.put_nowait(tts_pb2.SynthesizeResponse(end=end))


@dataclass
class _Turn:
    output: _Output
    text: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    @property
    def turn_id(self) -> str:
        return self.output.turn_id


class TextToSpeechServicer(tts_pb2_grpc.TextToSpeechServiceServicer):
    def __init__(self, engines: EngineChain | SpeechEngine, config: ChunkingConfig) -> None:
        self._chain = engines if isinstance(engines, EngineChain) else EngineChain([engines])
        self._config = config
        self.active_streams = 0
        # The load report's critical step: a turn's first audio from its first text.
        self.load = LoadTracker("tts", active_streams=lambda: self.active_streams)

    async def Synthesize(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[tts_pb2.SynthesizeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[tts_pb2.SynthesizeResponse]:
        opened = await open_stream(request_iterator, context, self._accept)
        if opened is None:
            return
        config, rate = opened
        outbox: Outbox = asyncio.Queue()
        errors: list[str] = []
        cancelled: set[str] = set()
        reader = asyncio.create_task(
            self._read(
                request_iterator, rate, config.voice, outbox, errors, cancelled, config.session_id
            )
        )
        self.active_streams += 1
        log.info(
            "stream opened (session %s, %d Hz, voice %s)",
            config.session_id,
            rate,
            config.voice or "default",
        )
        try:
            while (response := await outbox.get()) is not None:
                if response.HasField("audio") and response.audio.turn_id in cancelled:
                    continue  # queued before the cancel: never sent
                yield response
            if errors:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, errors[0])
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self.active_streams -= 1
            log.info("stream closed (session %s)", config.session_id)

    def _accept(self, config: tts_pb2.SynthesizeConfig) -> tuple[tts_pb2.SynthesizeConfig, int]:
        """The stream's config and sample rate, or why it is refused (a voice none serves)."""
        rate = sample_rate(config.sample_rate, self._chain.engines[0].sample_rate)
        problem = self._chain.voice_problem(config.voice)
        if problem is not None:
            raise InvalidRequestError(problem)
        return config, rate

    async def _read(
        self,
        requests: AsyncIterator[tts_pb2.SynthesizeRequest],
        rate: int,
        voice: str,
        outbox: Outbox,
        errors: list[str],
        cancelled: set[str],
        session_id: str,
    ) -> None:
        turns: dict[str, _Turn] = {}
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "text":
                    turn = turns.get(request.text.turn_id)
                    if turn is None:
                        work = self.load.begin()
                        turn = _Turn(_Output(request.text.turn_id, rate, outbox, pending=work))
                        turns[turn.turn_id] = turn
                        turn.task = asyncio.create_task(
                            self._speak(turn, request.text.trace_context, rate, voice, session_id)
                        )
                        turn.task.add_done_callback(_forget(turns, turn.turn_id))
                        turn.task.add_done_callback(work.on_done)
                    turn.text.put_nowait(request.text.text)
                elif kind == "flush":
                    turn = turns.get(request.flush.turn_id)
                    if turn is not None:
                        turn.text.put_nowait(None)
                    else:
                        _Output(request.flush.turn_id, rate, outbox).end()
                elif kind == "cancel":
                    turn = turns.get(request.cancel.turn_id)
                    if turn is not None and turn.task is not None:
                        cancelled.add(turn.turn_id)
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
            outbox.put_nowait(None)

    async def _speak(
        self,
        turn: _Turn,
        trace_context: audio_pb2.TraceContext,
        rate: int,
        voice: str,
        session_id: str,
    ) -> None:
        speaker = TurnSpeaker(
            self._chain,
            self._config,
            sample_rate=rate,
            voice=voice,
            output=turn.output,
        )
        parent = context_from_message(trace_context)
        with tracer.start_as_current_span("tts.synthesize", context=parent) as span:
            span.set_attribute("voice.turn_id", turn.turn_id)
            span.set_attribute("voice.session_id", session_id)
            await speaker.run(turn.text, span)

    async def aclose(self) -> None:
        await self._chain.aclose()


def _forget(turns: dict[str, _Turn], turn_id: str) -> Callable[[object], None]:
    """A done-callback that drops a finished turn from the stream's table.

    A turn cancelled before its task ever ran has said nothing yet: it still gets its end.
    """

    def forget(_task: object) -> None:
        turn = turns.pop(turn_id, None)
        if turn is not None and not turn.output.ended:
            if not turn.output.started:
                turn.output.start("")
            turn.output.end(cancelled=True)

    return forget
