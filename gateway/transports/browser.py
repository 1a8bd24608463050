"""The browser transport: the WebSocket protocol of docs/protocol.md.

JSON control messages and PCM16 or Opus binary frames in; JSON events and the agent's audio
(PCM16 at the announced rate, or Opus packets) out. The limits are enforced here: a frame over
``max_frame_bytes`` closes with 1009, nothing received for ``idle_timeout_s`` closes with an
``idle_timeout`` error, and a client that does not take a frame within ``SEND_TIMEOUT_S`` is
closed with 1008. A malformed message or frame gets an ``error`` event and is dropped; the
session goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from gateway.transports.base import (
    ClientAudio,
    ClientInput,
    ClientPlayed,
    ClientStop,
    StartRequest,
)
from gateway.transports.codecs import AudioIn, AudioOut, Pcm16In, Pcm16Out, audio_in, audio_out
from gateway.transports.messages import (
    Played,
    ProtocolError,
    Start,
    Stop,
    event,
    parse_client_message,
)
from gateway.turns.actions import ClientOutput, CloseAudio, OpenAudio, SendAudio, SendEvent
from voice.opus import OPUS_RATES

log = logging.getLogger(__name__)

# A client that does not take a frame within this long is too slow to keep.
SEND_TIMEOUT_S = 5.0
# Agent audio rate for Opus clients when the gateway's default is not an Opus rate.
OPUS_DEFAULT_OUTPUT_RATE = 24000


class BrowserTransport:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        input_rate: int,
        output_rate: int,
        max_frame_bytes: int,
        idle_timeout_s: float,
        count_error: Callable[[str], None],
        name: str = "",
    ) -> None:
        self._ws = ws
        self.input_rate = input_rate
        self.output_rate = output_rate
        self.codec = "pcm16"
        self._max_frame_bytes = max_frame_bytes
        self._idle_timeout_s = idle_timeout_s
        self._count_error = count_error
        self._name = name
        self._audio_in: AudioIn = Pcm16In(input_rate)
        self._audio_out: AudioOut = Pcm16Out()
        self._send_lock = asyncio.Lock()

    # ----------------------------------------------------------------- in

    async def receive(self) -> ClientInput | None:
        while True:
            try:
                message = await asyncio.wait_for(self._ws.receive(), self._idle_timeout_s)
            except TimeoutError:
                idle = self._idle_timeout_s
                log.info("session %s: idle for %.0fs, closing", self._name, idle)
                await self._error("idle_timeout", f"nothing received for {idle:.0f} s")
                await self.close(code=1000, reason="idle timeout")
                return None
            if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                size = len(message.data)
                if size > self._max_frame_bytes:
                    log.info("session %s: a %d-byte frame is too large; closing", self._name, size)
                    self._count_error("frame_too_large")
                    await self.close(code=1009, reason="frame too large")
                    return None
            if message.type == WSMsgType.TEXT:
                parsed = await self._control(message.data)
                if parsed is not None:
                    return parsed
            elif message.type == WSMsgType.BINARY:
                try:
                    pcm = self._audio_in.decode(message.data)
                except ProtocolError as error:
                    await self._error(error.code, str(error))
                    continue
                return ClientAudio(pcm, time.perf_counter())
            elif message.type == WSMsgType.ERROR:
                log.info("session %s: socket error: %s", self._name, self._ws.exception())
                return None
            else:  # CLOSE, CLOSING, CLOSED
                return None

    async def _control(self, raw: str) -> ClientInput | None:
        try:
            message = parse_client_message(raw)
        except ProtocolError as error:
            await self._error(error.code, str(error))
            return None
        if isinstance(message, Stop):
            return ClientStop()
        if isinstance(message, Played):
            return ClientPlayed(message.turn_id, message.ms, time.perf_counter())
        assert isinstance(message, Start)
        return StartRequest(
            sample_rate=message.sample_rate,
            output_sample_rate=message.output_sample_rate,
            codec=message.codec,
            voice=message.voice,
            language=message.language,
            pipeline=message.pipeline,
            early_thinking=message.early_thinking,
            end_of_turn=message.end_of_turn,
        )

    def rates_for(self, request: StartRequest) -> tuple[int, int]:
        """The (input, output) PCM16 rates the request would give."""
        codec = request.codec or self.codec
        output = request.output_sample_rate or self.output_rate
        if codec == "opus" and output not in OPUS_RATES:
            output = OPUS_DEFAULT_OUTPUT_RATE
        decoder = audio_in(codec, request.sample_rate or self.input_rate)
        return decoder.sample_rate, output

    def configure(self, request: StartRequest) -> None:
        self.codec = request.codec or self.codec
        rate = request.sample_rate or self.input_rate
        self.input_rate, self.output_rate = self.rates_for(request)
        self._audio_in = audio_in(self.codec, rate)

    # ----------------------------------------------------------------- out

    async def send(self, output: ClientOutput) -> None:
        if isinstance(output, SendEvent):
            await self._send_text(event(output.type, **output.fields))
        elif isinstance(output, SendAudio):
            for frame in await self._audio_out.encode(output.pcm):
                await self._send_bytes(frame)
        elif isinstance(output, OpenAudio):
            self._audio_out = audio_out(self.codec, output.sample_rate)
        elif isinstance(output, CloseAudio):
            out, self._audio_out = self._audio_out, Pcm16Out()
            for frame in await out.flush():
                await self._send_bytes(frame)

    async def send_event(self, kind: str, **fields: Any) -> None:
        await self._send_text(event(kind, **fields))

    def heard_text(self, estimate: str) -> str:
        # The page's ``played`` reports reach the turn machine, whose estimate uses them.
        return estimate

    async def _error(self, code: str, message: str) -> None:
        """An error of the transport's own (a bad message or frame, an idle client)."""
        self._count_error(code)
        await self.send_event("error", code=code, message=message)

    async def _send_text(self, text: str) -> None:
        await self._send(self._ws.send_str, text)

    async def _send_bytes(self, data: bytes) -> None:
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
                log.warning("session %s: the client is too slow to take audio; closing", self._name)
                self._count_error("client_too_slow")
                await self._ws.close(code=1008, message=b"client too slow")

    async def hang_up(self, *, at: float, reason: str) -> None:
        await asyncio.sleep(max(at - time.perf_counter(), 0.0))
        await self.close(code=1000, reason=reason)

    async def close(self, *, code: int, reason: str) -> None:
        await self._ws.close(code=code, message=reason.encode())
