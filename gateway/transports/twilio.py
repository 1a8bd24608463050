"""The phone transport: a Twilio Media Streams WebSocket (docs/protocol.md, "Phone calls").

Twilio sends the caller's audio as base64 mu-law at 8 kHz in 20 ms ``media`` messages; the
session gets it as PCM16 at 16 kHz (soxr, one streaming resampler per call in its low-latency
mode, so chunk joins are seamless and each frame goes on at once). The agent's audio, made at
the TTS rate, is resampled to 8 kHz (one resampler per reply, soxr's fixed-rate mode), encoded
to mu-law and sent as 20 ms ``media`` messages, with a ``mark`` after each chunk the TTS made
(``r<reply>.<n>``) and one after the reply's last audio (``r<reply>.end``).
Twilio echoes a mark once the audio before it has played to the caller, so the marks say what
the caller has heard (``heard_text``); a barge-in (the ``interrupted`` event) sends ``clear``,
which empties what the phone still had to play.

Keys pressed (``dtmf``) are gathered until a pause of ``DIGIT_GAP_S`` or ``#``, then handed to
the session as one ``ClientDigits``. The stream must ``start`` within ``start_timeout_s`` with a
token its ``verify_start`` accepts. A malformed message is logged (its kind, never its content),
counted and dropped; the call goes on. ``hang_up`` (the agent's ``end_call``) closes the stream
once the caller has heard everything, by the marks: Twilio then ends the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from gateway.transports.base import ClientAudio, ClientDigits, ClientInput, ClientStop, StartRequest
from gateway.transports.messages import ProtocolError
from gateway.transports.twilio_messages import (
    MEDIA_RATE,
    Connected,
    Dtmf,
    Mark,
    Media,
    StreamStart,
    StreamStop,
    clear_message,
    mark_message,
    media_message,
    parse_twilio_message,
)
from gateway.turns.actions import ClientOutput, CloseAudio, OpenAudio, SendAudio, SendEvent
from voice.audio import FrameBuffer, Resampler
from voice.mulaw import MulawDecoder, MulawEncoder

log = logging.getLogger(__name__)

# The rate the session (and stt) gets the caller's audio at.
PHONE_INPUT_RATE = 16000
FRAME_MS = 20
# Keys pressed within this long of each other make one input; "#" ends it at once.
DIGIT_GAP_S = 1.0
SEND_TIMEOUT_S = 5.0
# Hanging up waits for the last mark at most this long after the goodbye should have played.
HANG_UP_GRACE_S = 5.0


class TwilioTransport:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        *,
        output_rate: int,
        verify_start: Callable[[StreamStart], bool],
        idle_timeout_s: float,
        start_timeout_s: float,
        count_error: Callable[[str], None],
        name: str = "",
    ) -> None:
        self._ws = ws
        self.input_rate = PHONE_INPUT_RATE
        self.output_rate = output_rate
        self.codec = "mulaw"
        self._verify_start = verify_start
        self._idle_timeout_s = idle_timeout_s
        self._start_timeout_s = start_timeout_s
        self._count_error = count_error
        self._name = name
        self.stream_sid = ""
        self.call_sid = ""
        self._decoder = MulawDecoder()
        self._upsampler = Resampler(MEDIA_RATE, PHONE_INPUT_RATE, low_latency=True)
        self._encoder = MulawEncoder()
        self._downsampler: Resampler | None = None
        self._frames = FrameBuffer(MEDIA_RATE, FRAME_MS)
        self._digits = ""
        self._digits_due = 0.0
        # The reply whose audio goes out, its marks not yet played (name -> the chunk's text),
        # and the text of the chunks the caller has heard.
        self._reply = 0
        self._mark = 0
        self._pending: dict[str, tuple[int, str]] = {}
        self._heard: list[str] = []
        # A chunk's text whose audio is still in the frame buffer: it goes with the next mark.
        self._text = ""
        self._all_played = asyncio.Event()
        self._all_played.set()
        self._send_lock = asyncio.Lock()

    # ----------------------------------------------------------------- in

    async def receive(self) -> ClientInput | None:
        while True:
            try:
                message = await asyncio.wait_for(self._ws.receive(), self._wait_s())
            except TimeoutError:
                if self._digits and time.perf_counter() >= self._digits_due:
                    return self._take_digits()
                what = "no start" if not self.stream_sid else "no audio"
                log.info("session %s: %s for a while, closing", self._name, what)
                self._count_error("idle_timeout")
                await self.close(code=1000, reason="idle timeout")
                return None
            if message.type == WSMsgType.TEXT:
                item = await self._message(message.data)
                if item is not None:
                    return item
                if not self.stream_sid and self._ws.closed:
                    return None
            elif message.type == WSMsgType.BINARY:
                self._drop("invalid_message", "a binary frame (Twilio sends JSON text)")
            elif message.type == WSMsgType.ERROR:
                log.info("session %s: socket error: %s", self._name, self._ws.exception())
                return None
            else:  # CLOSE, CLOSING, CLOSED
                return None

    def _wait_s(self) -> float:
        if not self.stream_sid:
            return self._start_timeout_s
        if self._digits:
            return max(self._digits_due - time.perf_counter(), 0.0)
        return self._idle_timeout_s

    async def _message(self, raw: str) -> ClientInput | None:
        try:
            message = parse_twilio_message(raw)
        except ProtocolError as error:
            self._drop(error.code, str(error))
            return None
        if isinstance(message, Connected):
            return None
        if isinstance(message, StreamStart):
            return await self._start(message)
        if not self.stream_sid:
            self._drop("not_started", f"a {type(message).__name__} message before start")
            return None
        if isinstance(message, Media):
            if message.track not in ("inbound", "inbound_track"):
                return None
            pcm = self._upsampler.process(self._decoder.decode(message.payload))
            return ClientAudio(pcm, time.perf_counter())
        if isinstance(message, Mark):
            self._played(message.name)
            return None
        if isinstance(message, Dtmf):
            self._digits += message.digit
            self._digits_due = time.perf_counter() + DIGIT_GAP_S
            return self._take_digits() if message.digit == "#" else None
        assert isinstance(message, StreamStop)
        log.info("session %s: the stream stopped (the call ended)", self._name)
        return ClientStop()

    async def _start(self, start: StreamStart) -> ClientInput | None:
        if self.stream_sid:
            self._drop("already_started", "a second start message")
            return None
        if not self._verify_start(start):
            log.warning("session %s: refused a stream whose token does not verify", self._name)
            self._count_error("unauthorized")
            await self.close(code=1008, reason="unauthorized")
            return None
        self.stream_sid, self.call_sid = start.stream_sid, start.call_sid
        log.info(
            "session %s: stream %s started for call %s",
            self._name,
            start.stream_sid,
            start.call_sid,
        )
        return StartRequest()

    def configure(self, request: StartRequest) -> None:
        """Nothing to set: a phone's audio is always mu-law at 8 kHz."""

    def _take_digits(self) -> ClientDigits:
        digits, self._digits = self._digits, ""
        return ClientDigits(digits, time.perf_counter())

    def _drop(self, code: str, what: str) -> None:
        """A message that cannot be used: logged by kind, counted, dropped; the call goes on."""
        log.info("session %s: dropped a message: %s (%s)", self._name, code, what.split(":")[0])
        self._count_error(code)

    def _played(self, name: str) -> None:
        """Twilio played everything before mark ``name``, and so the marks before it."""
        if name not in self._pending:
            return  # a mark of audio cleared away, or not ours
        for pending in list(self._pending):
            reply, text = self._pending.pop(pending)
            if text and reply == self._reply:
                self._heard.append(text)
            if pending == name:
                break
        if not self._pending:
            self._all_played.set()

    # ----------------------------------------------------------------- what the caller heard

    def heard_text(self, estimate: str) -> str:
        """The text of the current reply's chunks whose first audio the caller has heard.

        ``estimate`` is the turn machine's own (from the audio sent and the clock): empty when
        none of the reply's audio went out, and then nothing of it was heard."""
        return " ".join(self._heard) if estimate else ""

    # ----------------------------------------------------------------- out

    async def send(self, output: ClientOutput) -> None:
        if isinstance(output, SendAudio):
            await self._audio(output.pcm, output.text)
        elif isinstance(output, OpenAudio):
            self._reply += 1
            self._mark = 0
            self._heard, self._text = [], ""
            self._downsampler = Resampler(output.sample_rate, MEDIA_RATE)
            self._frames.drain()
        elif isinstance(output, CloseAudio):
            if self._downsampler is not None:
                rest = self._downsampler.process(b"", last=True)
                frames = [*self._frames.push(rest), self._frames.drain()]
                await self._media(frames, "", last=True)
            self._downsampler = None
        elif isinstance(output, SendEvent):
            await self.send_event(output.type, **output.fields)

    async def _audio(self, pcm: bytes, text: str) -> None:
        if self._downsampler is None:
            return  # audio of a reply that was cleared away
        await self._media(self._frames.push(self._downsampler.process(pcm)), text)

    async def _media(self, frames: list[bytes], text: str, *, last: bool = False) -> None:
        """Send the frames, then a mark: ``r<reply>.<n>``, or ``r<reply>.end`` after the
        reply's last audio (sent even with no frames left, so the end is always marked)."""
        self._text = f"{self._text} {text}".strip()
        frames = [frame for frame in frames if frame]
        if not (frames or last) or not self.stream_sid:
            return
        for frame in frames:
            await self._send(media_message(self.stream_sid, self._encoder.encode(frame)))
        self._mark += 1
        name = f"r{self._reply}.end" if last else f"r{self._reply}.{self._mark}"
        self._pending[name], self._text = (self._reply, self._text), ""
        self._all_played.clear()
        await self._send(mark_message(self.stream_sid, name))

    async def send_event(self, kind: str, **fields: Any) -> None:
        """The session's events: ``interrupted`` clears the phone's buffer; the rest have no
        place in Twilio's protocol (transcripts and replies are logged at DEBUG)."""
        if kind == "interrupted":
            await self.clear()
        elif kind == "transcript" and fields.get("final"):
            log.debug("call %s: the caller said %r", self.call_sid, fields.get("text"))
        elif kind == "agent_text":
            log.debug("call %s: the agent says %r", self.call_sid, fields.get("text"))
        elif kind == "error":
            log.info(
                "session %s: error %s: %s", self._name, fields.get("code"), fields.get("message")
            )

    async def clear(self) -> None:
        """Drop what the phone still has to play (a barge-in); its marks no longer count."""
        self._pending.clear()
        self._all_played.set()
        self._downsampler, self._text = None, ""
        self._frames.drain()
        if self.stream_sid:
            await self._send(clear_message(self.stream_sid))

    async def hang_up(self, *, at: float, reason: str) -> None:
        """The agent ends the call (``end_call``): once the phone has played the goodbye, by
        its marks; at most ``HANG_UP_GRACE_S`` after the clock says it should have."""
        timeout_s = max(at - time.perf_counter(), 0.0) + HANG_UP_GRACE_S
        await self.hang_up_after_playback(timeout_s, reason=reason)

    async def hang_up_after_playback(self, timeout_s: float = 30.0, reason: str = "") -> None:
        """End the call once the caller has heard all the audio sent (its last mark is back):
        closing the stream ends ``<Connect>``, and the TwiML has nothing after it."""
        try:
            await asyncio.wait_for(self._all_played.wait(), timeout_s)
        except TimeoutError:
            log.info(
                "session %s: hanging up without the last mark after %.0f s", self._name, timeout_s
            )
        log.info("session %s: hanging up (%s)", self._name, reason or "call ended")
        await self.close(code=1000, reason=reason or "call ended")

    async def _send(self, text: str) -> None:
        if self._ws.closed:
            return
        async with self._send_lock:
            try:
                await asyncio.wait_for(self._ws.send_str(text), SEND_TIMEOUT_S)
            except ConnectionResetError:
                pass
            except TimeoutError:
                log.warning("session %s: Twilio does not take audio; closing", self._name)
                self._count_error("client_too_slow")
                await self._ws.close(code=1008, message=b"too slow")

    async def close(self, *, code: int, reason: str) -> None:
        await self._ws.close(code=code, message=reason.encode())
