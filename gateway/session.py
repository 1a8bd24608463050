"""One client session: the WebSocket, three session-long gRPC streams, and the conversation.

Tasks per session: the client reader (this coroutine), one reader per stage stream, and one task
per agent turn (see gateway/conversation.py). The stage readers route each response to the turn
whose stage id it carries and drop the rest, so nothing of a cancelled turn reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import WSMsgType, web

from gateway.codec import AudioIn, Pcm16In, audio_in, audio_out
from gateway.conversation import Conversation, ConversationConfig
from gateway.metrics import GatewayMetrics
from gateway.protocol import ProtocolError, Start, Stop, event, parse_client_message
from gateway.turn import TurnChannels
from gateway.upstream import DuplexStream, Upstreams
from voice.opus import OPUS_RATES
from voice.settings import GatewaySettings
from voice.v1 import audio_pb2, llm_pb2, stt_pb2, tts_pb2

log = logging.getLogger(__name__)

ARRIVALS_KEPT = 3000
# While a stage is down, its health is checked this often (doubling from the first): a user
# whose turn fails meanwhile can try again about a second after the stage is back.
RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 1.0
# Stream failures worth waiting out: the stage restarts, or its connection dropped. Anything
# else (a refused request, a full stage) ends the session with a clear error.
RECOVERABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)
# Agent audio rate for Opus clients when the gateway's default is not an Opus rate.
OPUS_DEFAULT_OUTPUT_RATE = 24000
SPEECH_STARTS = (
    stt_pb2.SpeechEvent.KIND_SPEECH_STARTED,
    stt_pb2.SpeechEvent.KIND_SPEECH_RESUMED,
)
# A client that does not take a frame within this long is too slow to keep.
SEND_TIMEOUT_S = 5.0
# How long a `start` waits for stt and tts to accept its stream configs (each answers with its
# response headers at once, or refuses with INVALID_ARGUMENT). A stage that says nothing in
# this time is taken to have accepted: its stream's reader reports any failure later.
ACCEPT_TIMEOUT_S = 5.0
# The error code for a start field a stage refused, by stage.
REFUSED_FIELD = {"stt": ("language", "unsupported_language"), "tts": ("voice", "unsupported_voice")}


class ArrivalClock:
    """When the audio at a stream time of the current stt stream reached the gateway.

    stt counts stream time from the first audio of *its* stream, so the clock has one epoch
    per stt stream: ``restart`` (when a stream is opened, or reopened after stt restarted)
    makes the next sample sent stream time 0 and forgets the arrivals of the old stream, whose
    stream times mean something else. Only responses from the current stream may be mapped
    (the session drops those of an older one).
    """

    def __init__(self, sample_rate: int) -> None:
        self.epoch = 0
        self._rate = sample_rate
        self._samples = 0
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=ARRIVALS_KEPT)

    def restart(self, sample_rate: int) -> None:
        self.epoch += 1
        self._rate = sample_rate
        self._samples = 0
        self._arrivals.clear()

    def record(self, samples: int, at: float) -> None:
        """``samples`` more samples were sent to the current stream at ``at``."""
        self._samples += samples
        self._arrivals.append((self._samples, at))

    def arrival_time(self, stream_time_s: float) -> float:
        """When the audio at ``stream_time_s`` (seconds since the stream's first audio) reached
        us: the arrival of the frame that holds that sample (now, if it has not arrived)."""
        target = int(stream_time_s * self._rate)
        for samples, arrived in self._arrivals:
            if samples >= target:
                return arrived
        return time.perf_counter()


class UpstreamFailureError(Exception):
    def __init__(self, stage: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{stage}: {code.name}: {details}")
        self.stage = stage
        self.code = code


class Session:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        upstreams: Upstreams,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self._ws = ws
        self._upstreams = upstreams
        self._settings = settings
        self._metrics = metrics
        self._input_rate = settings.input_sample_rate
        self._output_rate = settings.output_sample_rate
        self._serial = settings.pipeline == "serial"
        self._early_thinking = settings.early_thinking
        self._codec = "pcm16"
        self._language = ""
        self._voice = ""
        self._audio_in: AudioIn = Pcm16In(self._input_rate)
        self._send_lock = asyncio.Lock()
        self._stt: DuplexStream[stt_pb2.TranscribeRequest, stt_pb2.TranscribeResponse] | None = None
        self._llm: DuplexStream[llm_pb2.ConverseRequest, llm_pb2.ConverseResponse] | None = None
        self._tts: DuplexStream[tts_pb2.SynthesizeRequest, tts_pb2.SynthesizeResponse] | None = None
        self._conversation: Conversation | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._clock = ArrivalClock(self._input_rate)
        loop = asyncio.get_running_loop()
        self._failure: asyncio.Future[UpstreamFailureError] = loop.create_future()
        self._closing = False
        self._down: set[str] = set()

    # ----------------------------------------------------------------- client side

    async def run(self) -> None:
        await self._ready()
        reader = asyncio.create_task(self._read_client())
        try:
            waitables: list[asyncio.Future[Any]] = [reader, self._failure]
            done, _ = await asyncio.wait(waitables, return_when=asyncio.FIRST_COMPLETED)
            if self._failure in done:
                failure = self._failure.result()
                log.warning("session %s: upstream failed: %s", self.id, failure)
                await self.send_error(
                    "upstream_unavailable",
                    f"the {failure.stage} service is unavailable ({failure.code.name}); "
                    "please reconnect shortly",
                )
                await self.close(code=1011, reason="upstream unavailable")
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await self._close_upstreams()

    async def _ready(self) -> None:
        await self.send_text(
            event(
                "ready",
                session_id=self.id,
                sample_rate=self._input_rate,
                output_sample_rate=self._output_rate,
                codec=self._codec,
            )
        )

    async def _read_client(self) -> None:
        idle_s = self._settings.idle_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(self._ws.receive(), idle_s)
            except TimeoutError:
                log.info("session %s: idle for %.0fs, closing", self.id, idle_s)
                await self.send_error("idle_timeout", f"nothing received for {idle_s:.0f} s")
                await self.close(code=1000, reason="idle timeout")
                return
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                size = len(message.data)
                if size > self._settings.max_frame_bytes:
                    log.info("session %s: a %d-byte frame is too large; closing", self.id, size)
                    self._metrics.errors.labels("frame_too_large").inc()
                    await self.close(code=1009, reason="frame too large")
                    return
            if message.type == WSMsgType.TEXT:
                if not await self._on_text(message.data):
                    return
            elif message.type == WSMsgType.BINARY:
                await self._on_audio(message.data)
            elif message.type == WSMsgType.ERROR:
                log.info("session %s: socket error: %s", self.id, self._ws.exception())
                return
            else:  # CLOSE, CLOSING, CLOSED
                return

    async def _on_text(self, raw: str) -> bool:
        try:
            message = parse_client_message(raw)
        except ProtocolError as error:
            await self.send_error(error.code, str(error))
            return True
        if isinstance(message, Stop):
            return False
        assert isinstance(message, Start)
        if self._stt is not None:
            await self.send_error("already_started", "start must come before any audio")
            return True
        self._apply(message)
        # The stages check what they serve (stt the language, tts the voice) before `ready`.
        for code, text in await self._open_checked():
            await self.send_error(code, text)
        self._open_upstreams()
        await self._ready()
        return True

    def _apply(self, message: Start) -> None:
        self._language = message.language
        self._voice = message.voice
        self._input_rate = message.sample_rate or self._input_rate
        self._output_rate = message.output_sample_rate or self._output_rate
        if message.pipeline:
            self._serial = message.pipeline == "serial"
        if message.early_thinking is not None:
            self._early_thinking = message.early_thinking
        self._codec = message.codec or self._codec
        if self._codec == "opus" and self._output_rate not in OPUS_RATES:
            self._output_rate = OPUS_DEFAULT_OUTPUT_RATE
        self._audio_in = audio_in(self._codec, self._input_rate)
        self._input_rate = self._audio_in.sample_rate

    async def _open_checked(self) -> list[tuple[str, str]]:
        """Open the stt and tts streams and wait until each has accepted its config.

        A stage that refuses the start's language (stt) or voice (tts) gets its stream opened
        again with its default, and the refusal is returned as an error (code, message) for
        the client; the rest of the start applies. Any other refusal is left to the stream's
        reader (it ends the session), and a stage that cannot be reached is waited for as
        always.
        """
        refusals: list[tuple[str, str]] = []
        pending = ["stt", "tts"]
        while pending:
            opened = {
                stage: self._open_stt() if stage == "stt" else self._open_tts() for stage in pending
            }
            reasons = await asyncio.gather(*(self._refusal(s) for s in opened.values()))
            pending = []
            for (stage, stream), reason in zip(opened.items(), reasons, strict=True):
                field, code = REFUSED_FIELD[stage]
                if reason is None or not (self._language if stage == "stt" else self._voice):
                    continue
                log.info("session %s: %s refused the %s: %s", self.id, stage, field, reason)
                refusals.append((code, f"{reason}; the session goes on with the default {field}"))
                stream.close()
                stream.cancel()
                if stage == "stt":
                    self._language = ""
                else:
                    self._voice = ""
                pending.append(stage)
        return refusals

    @staticmethod
    async def _refusal(stream: DuplexStream[Any, Any]) -> str | None:
        """The stage's reason if it refused the stream's config (INVALID_ARGUMENT), else None."""
        call = stream.call
        try:
            await asyncio.wait_for(call.initial_metadata(), ACCEPT_TIMEOUT_S)
        except TimeoutError:
            return None
        if not call.done() or await call.code() != grpc.StatusCode.INVALID_ARGUMENT:
            return None
        return str(await call.details())

    async def _on_audio(self, frame: bytes) -> None:
        try:
            pcm = self._audio_in.decode(frame)
        except ProtocolError as error:
            await self.send_error(error.code, str(error))
            return
        if self._stt is None:
            self._open_upstreams()
        assert self._stt is not None
        self._clock.record(len(pcm) // 2, time.perf_counter())
        self._stt.send(
            stt_pb2.TranscribeRequest(
                audio=audio_pb2.AudioChunk(pcm=pcm, sample_rate=self._input_rate)
            )
        )

    async def send_error(self, code: str, message: str, **fields: Any) -> None:
        self._metrics.errors.labels(code).inc()
        await self.send_text(event("error", code=code, message=message, **fields))

    async def send_text(self, text: str) -> None:
        await self._send(self._ws.send_str, text)

    async def send_bytes(self, data: bytes) -> None:
        await self._send(self._ws.send_bytes, data)

    async def _send(self, send: Any, payload: str | bytes) -> None:
        if self._ws.closed:
            return
        async with self._send_lock:
            try:
                await asyncio.wait_for(send(payload), SEND_TIMEOUT_S)
            except ConnectionResetError:
                pass
            except TimeoutError:
                log.warning("session %s: the client is too slow to take audio; closing", self.id)
                self._metrics.errors.labels("client_too_slow").inc()
                await self._ws.close(code=1008, message=b"client too slow")

    def arrival_time(self, stream_time_s: float) -> float:
        """When the audio at ``stream_time_s`` of the current stt stream reached us."""
        return self._clock.arrival_time(stream_time_s)

    # ----------------------------------------------------------------- stage side

    def _open_upstreams(self) -> None:
        settings = self._settings
        self._conversation = Conversation(
            ConversationConfig(
                session_id=self.id,
                serial=self._serial,
                barge_in_s=settings.barge_in_ms / 1000,
                early_thinking=self._early_thinking,
                turn_timeout_s=settings.turn_timeout_s,
            ),
            TurnChannels(
                send_stt=self._send_stt,
                send_llm=self._send_llm,
                send_tts=self._send_tts,
                send_text=self.send_text,
                send_bytes=self.send_bytes,
                send_error=self.send_error,
                audio_out=lambda rate: audio_out(self._codec, rate),
            ),
            self.arrival_time,
            self._metrics,
            unavailable=self.unavailable_stage,
        )
        # A start has opened (and had accepted) the stt and tts streams already.
        self._stt = self._stt or self._open_stt()
        self._llm = self._open_llm()
        self._tts = self._tts or self._open_tts()
        self._readers = [
            asyncio.create_task(self._keep("stt", self._stt, self._open_stt, self._on_stt)),
            asyncio.create_task(self._keep("llm", self._llm, self._open_llm, self._on_llm)),
            asyncio.create_task(self._keep("tts", self._tts, self._open_tts, self._on_tts)),
        ]

    def _open_stt(self) -> DuplexStream[stt_pb2.TranscribeRequest, stt_pb2.TranscribeResponse]:
        config = stt_pb2.TranscribeConfig(
            session_id=self.id, sample_rate=self._input_rate, language=self._language
        )
        self._stt = DuplexStream(
            self._upstreams.stt.Transcribe, stt_pb2.TranscribeRequest(config=config)
        )
        # The new stream's time 0 is the next sample sent to it (audio goes to self._stt).
        self._clock.restart(self._input_rate)
        return self._stt

    def _open_llm(self) -> DuplexStream[llm_pb2.ConverseRequest, llm_pb2.ConverseResponse]:
        config = llm_pb2.ConverseConfig(session_id=self.id)
        self._llm = DuplexStream(
            self._upstreams.llm.Converse, llm_pb2.ConverseRequest(config=config)
        )
        return self._llm

    def _open_tts(self) -> DuplexStream[tts_pb2.SynthesizeRequest, tts_pb2.SynthesizeResponse]:
        config = tts_pb2.SynthesizeConfig(
            session_id=self.id, sample_rate=self._output_rate, voice=self._voice
        )
        self._tts = DuplexStream(
            self._upstreams.tts.Synthesize, tts_pb2.SynthesizeRequest(config=config)
        )
        return self._tts

    def _send_stt(self, request: stt_pb2.TranscribeRequest) -> None:
        if self._stt is not None:
            self._stt.send(request)

    def _send_llm(self, request: llm_pb2.ConverseRequest) -> None:
        if self._llm is not None:
            self._llm.send(request)

    def _send_tts(self, request: tts_pb2.SynthesizeRequest) -> None:
        if self._tts is not None:
            self._tts.send(request)

    def unavailable_stage(self) -> str | None:
        """A stage this session cannot reach right now, if any."""
        return next(iter(sorted(self._down)), None)

    async def _keep(
        self,
        stage: str,
        stream: DuplexStream[Any, Any],
        reopen: Callable[[], DuplexStream[Any, Any]],
        handle: Callable[[DuplexStream[Any, Any], Any], Awaitable[None]],
    ) -> None:
        """Read a stage's stream; when it breaks, tell the client, wait for the stage, reopen."""
        backoff = RECONNECT_MIN_S
        while True:
            try:
                async for response in stream.responses():
                    await handle(stream, response)
                code, details = grpc.StatusCode.UNAVAILABLE, "the stream ended"
            except grpc.aio.AioRpcError as error:
                code, details = error.code(), error.details() or ""
            if self._closing:
                return
            if code not in RECOVERABLE:
                if not self._failure.done():
                    self._failure.set_result(UpstreamFailureError(stage, code, details))
                return
            if stage not in self._down:
                self._down.add(stage)
                log.warning(
                    "session %s: %s stream broke (%s: %s)", self.id, stage, code.name, details
                )
                await self.send_error(
                    "upstream_unavailable",
                    f"the {stage} service is unavailable ({code.name}); retrying",
                    stage=stage,
                )
                if self._conversation is not None:
                    await self._conversation.cancel_turn()
                    if stage == "stt":
                        self._conversation.forget_speech()
            while not await self._upstreams.serving(stage):
                if self._closing:
                    return
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)
            if self._closing:
                return
            backoff = RECONNECT_MIN_S
            stream = reopen()
            self._down.discard(stage)
            log.info("session %s: %s stream reopened", self.id, stage)

    async def _on_stt(
        self, stream: DuplexStream[Any, Any], response: stt_pb2.TranscribeResponse
    ) -> None:
        conversation = self._conversation
        assert conversation is not None
        if stream is not self._stt:
            return  # an older stream's: its stream times are not the clock's
        if response.HasField("speech_event"):
            kind = response.speech_event.kind
            if kind in SPEECH_STARTS:
                await self.send_text(event("speech_started", turn_id=conversation.next_turn_id))
            await conversation.on_speech_event(response.speech_event)
            return
        transcript = response.transcript
        if conversation.ignores(transcript):
            return
        await self.send_text(
            event(
                "transcript",
                text=transcript.text,
                final=transcript.final,
                turn_id=conversation.next_turn_id,
            )
        )
        await conversation.on_transcript(transcript)

    async def _on_llm(
        self, _stream: DuplexStream[Any, Any], response: llm_pb2.ConverseResponse
    ) -> None:
        turn = self._conversation.turn if self._conversation else None
        stage_id = response.delta.turn_id if response.HasField("delta") else response.done.turn_id
        if turn is not None and turn.stage_id == stage_id:
            turn.llm_events.put_nowait(response)

    async def _on_tts(
        self, _stream: DuplexStream[Any, Any], response: tts_pb2.SynthesizeResponse
    ) -> None:
        turn = self._conversation.turn if self._conversation else None
        kind = response.WhichOneof("event")
        stage_id = getattr(response, kind).turn_id if kind else ""
        if turn is not None and turn.stage_id == stage_id:
            turn.tts_events.put_nowait(response)

    async def _close_upstreams(self) -> None:
        self._closing = True
        if self._conversation is not None:
            await self._conversation.close()
        for stream in (self._stt, self._llm, self._tts):
            if stream is not None:
                stream.close()
                stream.cancel()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def drain(self, timeout_s: float) -> None:
        """Let the current turn finish, then close the socket with 1001 (going away)."""
        if self._conversation is not None:
            await self._conversation.drain(timeout_s)
        await self.close(code=1001, reason="the gateway is shutting down")

    async def close(self, *, code: int, reason: str) -> None:
        """Close the client's socket (the session's run then ends)."""
        await self._ws.close(code=code, message=reason.encode())
