"""One client session: the WebSocket, three session-long gRPC streams, and the current turn.

Tasks per session: the client reader (this coroutine), one reader per stage stream, and one task
per agent turn. The stage readers route each response to the turn whose id it carries and drop
the rest, so nothing of a cancelled turn ever reaches the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

import grpc
from aiohttp import WSMsgType, web

from gateway.protocol import ProtocolError, Start, Stop, event, parse_client_message
from gateway.timeline import Timeline
from gateway.turn import AgentTurn, TurnChannels
from gateway.upstream import DuplexStream, Upstreams
from voice.settings import GatewaySettings
from voice.v1 import audio_pb2, llm_pb2, stt_pb2, tts_pb2
from voice.wer import normalize_transcript

log = logging.getLogger(__name__)

CANCEL_TIMEOUT_S = 1.0
ARRIVALS_KEPT = 3000


class UpstreamFailureError(Exception):
    def __init__(self, stage: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{stage}: {code.name}: {details}")
        self.stage = stage
        self.code = code


def _same_text(a: str, b: str) -> bool:
    return normalize_transcript(a) == normalize_transcript(b)


class Session:
    def __init__(
        self, ws: web.WebSocketResponse, upstreams: Upstreams, settings: GatewaySettings
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self._ws = ws
        self._upstreams = upstreams
        self._settings = settings
        self._input_rate = settings.input_sample_rate
        self._output_rate = settings.output_sample_rate
        self._send_lock = asyncio.Lock()
        self._stt: DuplexStream[stt_pb2.TranscribeRequest, stt_pb2.TranscribeResponse] | None = None
        self._llm: DuplexStream[llm_pb2.ConverseRequest, llm_pb2.ConverseResponse] | None = None
        self._tts: DuplexStream[tts_pb2.SynthesizeRequest, tts_pb2.SynthesizeResponse] | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._turn: AgentTurn | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._turns = 0
        self._attempts = 0
        self._end_of_turn_at: float | None = None
        self._serial = settings.pipeline == "serial"
        self._samples_in = 0
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=ARRIVALS_KEPT)
        loop = asyncio.get_running_loop()
        self._failure: asyncio.Future[UpstreamFailureError] = loop.create_future()
        self._closing = False

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
                await self.send_text(
                    event(
                        "error",
                        code="upstream_unavailable",
                        message=f"the {failure.stage} service is unavailable "
                        f"({failure.code.name}); please reconnect shortly",
                    )
                )
                await self._ws.close(code=1011, message=b"upstream unavailable")
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
            )
        )

    async def _read_client(self) -> None:
        async for message in self._ws:
            if message.type == WSMsgType.TEXT:
                if not await self._on_text(message.data):
                    return
            elif message.type == WSMsgType.BINARY:
                await self._on_audio(message.data)
            elif message.type == WSMsgType.ERROR:
                log.info("session %s: socket error: %s", self.id, self._ws.exception())
                return

    async def _on_text(self, raw: str) -> bool:
        try:
            message = parse_client_message(raw)
        except ProtocolError as error:
            await self.send_text(event("error", code=error.code, message=str(error)))
            return True
        if isinstance(message, Stop):
            return False
        assert isinstance(message, Start)
        if self._stt is not None:
            await self.send_text(
                event("error", code="already_started", message="start must come before any audio")
            )
            return True
        self._input_rate = message.sample_rate or self._input_rate
        self._output_rate = message.output_sample_rate or self._output_rate
        if message.pipeline:
            self._serial = message.pipeline == "serial"
        self._open_upstreams()
        await self._ready()
        return True

    async def _on_audio(self, pcm: bytes) -> None:
        frame_ms = len(pcm) * 1000 / (2 * self._input_rate)
        if len(pcm) % 2 or frame_ms < 10 or frame_ms > 200:
            await self.send_text(
                event(
                    "error",
                    code="invalid_audio",
                    message="binary frames must be PCM16 mono of 10 to 200 ms "
                    f"at {self._input_rate} Hz (got {len(pcm)} bytes)",
                )
            )
            return
        if self._stt is None:
            self._open_upstreams()
        assert self._stt is not None
        self._samples_in += len(pcm) // 2
        self._arrivals.append((self._samples_in, time.perf_counter()))
        self._stt.send(
            stt_pb2.TranscribeRequest(
                audio=audio_pb2.AudioChunk(pcm=pcm, sample_rate=self._input_rate)
            )
        )

    async def send_text(self, text: str) -> None:
        if self._ws.closed:
            return
        async with self._send_lock:
            with contextlib.suppress(ConnectionResetError):
                await self._ws.send_str(text)

    async def send_bytes(self, data: bytes) -> None:
        if self._ws.closed:
            return
        async with self._send_lock:
            with contextlib.suppress(ConnectionResetError):
                await self._ws.send_bytes(data)

    def arrival_time(self, stream_time_s: float) -> float:
        """When the audio at ``stream_time_s`` (seconds since the first audio) reached us."""
        target = int(stream_time_s * self._input_rate)
        for samples, arrived in self._arrivals:
            if samples >= target:
                return arrived
        return time.perf_counter()

    # ----------------------------------------------------------------- stage side

    def _open_upstreams(self) -> None:
        up = self._upstreams
        self._stt = DuplexStream(
            up.stt.Transcribe,
            stt_pb2.TranscribeRequest(
                config=stt_pb2.TranscribeConfig(session_id=self.id, sample_rate=self._input_rate)
            ),
        )
        self._llm = DuplexStream(
            up.llm.Converse,
            llm_pb2.ConverseRequest(config=llm_pb2.ConverseConfig(session_id=self.id)),
        )
        self._tts = DuplexStream(
            up.tts.Synthesize,
            tts_pb2.SynthesizeRequest(
                config=tts_pb2.SynthesizeConfig(session_id=self.id, sample_rate=self._output_rate)
            ),
        )
        self._readers = [
            asyncio.create_task(self._guard("stt", self._stt.responses(), self._on_stt)),
            asyncio.create_task(self._guard("llm", self._llm.responses(), self._on_llm)),
            asyncio.create_task(self._guard("tts", self._tts.responses(), self._on_tts)),
        ]

    async def _guard(self, stage: str, responses: AsyncIterator[Any], handle: Any) -> None:
        try:
            async for response in responses:
                await handle(response)
            failure = UpstreamFailureError(stage, grpc.StatusCode.UNAVAILABLE, "the stream ended")
        except grpc.aio.AioRpcError as error:
            failure = UpstreamFailureError(stage, error.code(), error.details() or "")
        if not self._closing and not self._failure.done():
            self._failure.set_result(failure)

    async def _on_stt(self, response: stt_pb2.TranscribeResponse) -> None:
        if response.HasField("speech_event"):
            kind = response.speech_event.kind
            if kind == stt_pb2.SpeechEvent.KIND_SPEECH_STARTED:
                await self._cancel_turn()  # barge-in, or an early start the user talked over
            elif kind == stt_pb2.SpeechEvent.KIND_SPEECH_RESUMED:
                await self._discard_early_turn()
            elif kind == stt_pb2.SpeechEvent.KIND_END_OF_TURN:
                self._end_of_turn_at = self.arrival_time(response.speech_event.stream_time_s)
            return
        transcript = response.transcript
        text = transcript.text.strip()
        await self.send_text(
            event("transcript", text=transcript.text, final=transcript.final, turn_id=self._next_id)
        )
        if transcript.at_pause and text and not self._serial:
            await self._start_turn(text, transcript.speech_end_s, early=True)
        elif transcript.final:
            turn = self._turn
            if turn is not None and turn.early and turn.held and _same_text(turn.text, text):
                self._confirmed(turn.timeline)
                turn.early = False
                await turn.release()
            elif text:
                await self._discard_early_turn()
                await self._start_turn(text, transcript.speech_end_s, early=False)
            else:
                await self._discard_early_turn()

    async def _on_llm(self, response: llm_pb2.ConverseResponse) -> None:
        turn = self._turn
        stage_id = response.delta.turn_id if response.HasField("delta") else response.done.turn_id
        if turn is not None and turn.stage_id == stage_id:
            turn.llm_events.put_nowait(response)

    async def _on_tts(self, response: tts_pb2.SynthesizeResponse) -> None:
        turn = self._turn
        kind = response.WhichOneof("event")
        stage_id = getattr(response, kind).turn_id if kind else ""
        if turn is not None and turn.stage_id == stage_id:
            turn.tts_events.put_nowait(response)

    # ----------------------------------------------------------------- turns

    @property
    def _next_id(self) -> str:
        return f"{self.id}-{self._turns + 1}"

    def _confirmed(self, timeline: Timeline) -> None:
        """The user's turn has ended: count it and note when stt said so."""
        self._turns += 1
        timeline.mark("stt_complete")
        if self._end_of_turn_at is not None:
            timeline.mark("end_of_turn", self._end_of_turn_at)
            self._end_of_turn_at = None

    async def _start_turn(self, text: str, speech_end_s: float, *, early: bool) -> None:
        """Start a turn; an early one (early thinking) shows nothing until it is released."""
        await self._cancel_turn()
        assert self._llm is not None and self._tts is not None
        self._attempts += 1
        timeline = Timeline(self.arrival_time(speech_end_s))
        number = self._turns + 1
        if not early:
            self._confirmed(timeline)
        self._turn = AgentTurn(
            turn_id=f"{self.id}-{number}",
            stage_id=f"{self.id}-a{self._attempts}",
            number=number,
            text=text,
            timeline=timeline,
            early=early,
            serial=self._serial,
            channels=TurnChannels(
                send_llm=self._llm.send,
                send_tts=self._tts.send,
                send_text=self.send_text,
                send_bytes=self.send_bytes,
            ),
        )
        self._turn_task = asyncio.create_task(self._turn.run(), name=self._turn.stage_id)

    async def _discard_early_turn(self) -> None:
        if self._turn is not None and self._turn.early:
            await self._cancel_turn()

    async def _cancel_turn(self) -> None:
        """Stop the current turn. The client hears of it only if it saw or heard any of it."""
        task, turn = self._turn_task, self._turn
        self._turn_task, self._turn = None, None
        if task is None or turn is None:
            return
        audible = not turn.early and (not task.done() or turn.playing())
        if turn.early:
            turn.discarded = True
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(task), CANCEL_TIMEOUT_S)
        if audible:
            await self.send_text(event("interrupted", turn_id=turn.turn_id))

    async def _close_upstreams(self) -> None:
        self._closing = True
        await self._cancel_turn()
        for stream in (self._stt, self._llm, self._tts):
            if stream is not None:
                stream.close()
                stream.cancel()
        for reader in self._readers:
            reader.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)

    async def close(self, *, code: int, reason: str) -> None:
        """Close the client's socket (the session's run then ends)."""
        await self._ws.close(code=code, message=reason.encode())
