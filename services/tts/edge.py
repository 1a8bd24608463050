"""Edge TTS: Microsoft Edge's read-aloud service over a WebSocket, MP3 decoded to PCM as it comes.

The wire protocol is the one ``edge-tts`` speaks (its ``communicate.py``), and this adapter uses
``edge-tts`` for every part of it that changes when the service does: the URL and trusted
client token, the ``Sec-MS-GEC`` token and its clock-skew correction, the browser headers,
the SSML and the message framing. It drives the socket itself for two things ``Communicate``
does not offer:

- **The connection is opened ahead of need.** ``prepare()`` (called when a turn's first text
  arrives, and again while each chunk streams) opens the next connection in the background, so
  by the time a chunk's text is complete the DNS, TCP, TLS and WebSocket handshakes are done.
  An unused connection is closed after ``SPARE_MAX_AGE_S``.
- **One request per connection.** The service does not take a second request on a socket
  reliably, and edge-tts's maintainer reports that reusing one gets a client blocked; so the
  protocol does not allow reuse, and each chunk gets its own (pre-opened) connection instead.

``EDGE_TTS_URL`` replaces the service's base URL (``ws://127.0.0.1:PORT/...`` for the contract
test); the adapter appends the per-connection query parameters to whatever it is given.

A failure before a chunk's first audio (no network, a refused handshake, an error or a close
from the service, nothing within ``first_audio_timeout_s``) raises :class:`EngineError`, so the
turn falls back to the next engine, and the engine stays *unavailable* for ``COOLDOWN_S``: the
next turns go straight to the fallback instead of paying for the same failure again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import aiohttp
import certifi
from edge_tts.communicate import (
    connect_id,
    date_to_string,
    get_headers_and_data,
    mkssml,
    remove_incompatible_characters,
    ssml_headers_plus_data,
)
from edge_tts.constants import SEC_MS_GEC_VERSION, WSS_HEADERS, WSS_URL
from edge_tts.data_classes import TTSConfig
from edge_tts.drm import DRM

from services.tts.mp3 import Mp3Decoder
from voice.errors import EngineError

log = logging.getLogger(__name__)

DEFAULT_VOICE = "en-US-AriaNeural"
# What an Edge voice name looks like (the service itself knows which exist: an unknown name of
# this shape fails at the first chunk, as any other Edge failure does).
VOICE_NAME = re.compile(
    r"[a-z]{2,}-[A-Z]{2,}-\S+Neural|Microsoft Server Speech Text to Speech Voice \(.+,.+\)"
)
OUTPUT_FORMAT = "audio-24khz-48kbitrate-mono-mp3"
SAMPLE_RATE = 24000
SPARE_MAX_AGE_S = 15.0
COOLDOWN_S = 30.0
RECEIVE_TIMEOUT_S = 10.0
_SSL = ssl.create_default_context(cafile=certifi.where())

WebSocket = aiohttp.ClientWebSocketResponse


def speech_config_message() -> str:
    """The first message on a connection: the output format (as edge-tts sends it)."""
    return (
        f"X-Timestamp:{date_to_string()}\r\n"
        "Content-Type:application/json; charset=utf-8\r\n"
        "Path:speech.config\r\n\r\n"
        '{"context":{"synthesis":{"audio":{"metadataoptions":{'
        '"sentenceBoundaryEnabled":"true","wordBoundaryEnabled":"false"},'
        f'"outputFormat":"{OUTPUT_FORMAT}"'
        "}}}}\r\n"
    )


def connection_url(base: str) -> str:
    """The service URL with the per-connection parameters edge-tts adds."""
    separator = "&" if "?" in base else "?"
    return (
        f"{base}{separator}ConnectionId={connect_id()}"
        f"&Sec-MS-GEC={DRM.generate_sec_ms_gec()}&Sec-MS-GEC-Version={SEC_MS_GEC_VERSION}"
    )


@dataclass
class _Spare:
    task: asyncio.Task[WebSocket]
    timer: asyncio.TimerHandle | None = None


class _StaleConnectionError(EngineError):
    """A pre-opened connection was gone by the time it was used: worth one fresh try."""


class _Turn:
    """One request on one connection: the service's messages in, decoded audio out."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.decoder = Mp3Decoder(SAMPLE_RATE)
        self.ended = False

    async def send(self, ssml: str) -> None:
        try:
            await self.ws.send_str(speech_config_message())
            await self.ws.send_str(ssml)
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as error:
            raise _StaleConnectionError(
                f"edge: could not send the request: {_why(error)}"
            ) from error

    async def next_pcm(self) -> bytes | None:
        """The next decoded audio, or None once the service has sent ``turn.end``."""
        while not self.ended:
            message = await self.ws.receive(timeout=RECEIVE_TIMEOUT_S)
            if message.type == aiohttp.WSMsgType.TEXT:
                data = message.data.encode()
                headers, _ = get_headers_and_data(data, data.find(b"\r\n\r\n"))
                path = headers.get(b"Path")
                if path == b"turn.end":
                    self.ended = True
                    return self.decoder.flush() or None
                if path not in (b"turn.start", b"response", b"audio.metadata"):
                    raise EngineError(f"edge: unexpected message {path!r}")
            elif message.type == aiohttp.WSMsgType.BINARY:
                if pcm := self._audio(message.data):
                    return pcm
            elif message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING):
                raise _StaleConnectionError(
                    f"edge: the service closed the connection ({message.data}, {message.extra})"
                )
            elif message.type == aiohttp.WSMsgType.CLOSED:
                raise _StaleConnectionError("edge: the connection is closed")
            else:
                raise EngineError(f"edge: websocket {message.type.name}: {message.data!r}")
        return None

    def _audio(self, data: bytes) -> bytes:
        if len(data) < 2:
            raise EngineError("edge: a binary message without its header length")
        header_length = int.from_bytes(data[:2], "big")
        if header_length > len(data):
            raise EngineError("edge: a binary message shorter than its header")
        headers, audio = get_headers_and_data(data, header_length)
        if headers.get(b"Path") != b"audio":
            raise EngineError("edge: a binary message that is not audio")
        content_type = headers.get(b"Content-Type")
        if content_type is None and not audio:
            return b""  # the service's end-of-stream marker
        if content_type != b"audio/mpeg" or not audio:
            raise EngineError(f"edge: unexpected audio message ({content_type!r})")
        return self.decoder.push(audio)


def _why(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


async def _close(ws: WebSocket) -> None:
    try:
        await ws.close()
    except Exception as error:  # the socket may already be gone; nothing to do about it
        log.debug("edge: closing a connection failed: %r", error)


class EdgeEngine:
    name = "edge"
    sample_rate = SAMPLE_RATE
    voices = "Edge voice names such as en-GB-SoniaNeural"

    def __init__(
        self,
        voice: str = DEFAULT_VOICE,
        url: str = "",
        first_audio_timeout_s: float = 2.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.voice = voice
        self.url = url or WSS_URL
        self.first_audio_timeout_s = first_audio_timeout_s
        self.connections_opened = 0
        self.last_error = ""
        self._clock = clock
        self._down_until = float("-inf")
        self._session: aiohttp.ClientSession | None = None
        self._spare: _Spare | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def available(self) -> bool:
        return self._clock() >= self._down_until

    @staticmethod
    def serves_voice(voice: str) -> bool:
        return not voice or VOICE_NAME.fullmatch(voice) is not None

    def prepare(self) -> None:
        """Open the next connection now, in the background, unless one is open or opening."""
        if self._spare is not None or not self.available():
            return
        spare = _Spare(asyncio.create_task(self._connect()))
        spare.timer = asyncio.get_running_loop().call_later(
            SPARE_MAX_AGE_S, self._drop_spare, spare
        )
        spare.task.add_done_callback(self._spare_opened)
        self._spare = spare

    async def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]:
        if not self.available():
            raise EngineError(f"edge is cooling down after: {self.last_error}")
        ssml = self._ssml(text, voice)
        turn: _Turn | None = None
        try:
            try:
                async with asyncio.timeout(self.first_audio_timeout_s):
                    turn, first = await self._request(ssml)
            except TimeoutError as error:
                raise EngineError(
                    f"edge: no audio within {self.first_audio_timeout_s:.1f}s"
                ) from error
            yield first
            while (pcm := await turn.next_pcm()) is not None:
                yield pcm
        except EngineError as error:
            self._failed(str(error))
            raise
        except (aiohttp.ClientError, OSError) as error:
            self._failed(f"edge: {_why(error)}")
            raise EngineError(f"edge: {_why(error)}") from error
        finally:
            if turn is not None:
                self._close_later(turn.ws)

    def _ssml(self, text: str, voice: str) -> str:
        try:
            config = TTSConfig(voice or self.voice, "+0%", "+0%", "+0Hz", "SentenceBoundary")
        except ValueError as error:
            raise EngineError(f"edge: {error}") from error
        return ssml_headers_plus_data(
            connect_id(),
            date_to_string(),
            mkssml(config, escape(remove_incompatible_characters(text))),
        )

    async def _request(self, ssml: str) -> tuple[_Turn, bytes]:
        """Send the request on a ready connection; returns the turn and its first audio."""
        ws, pre_opened = await self._take()
        while True:
            turn = _Turn(ws)
            try:
                await turn.send(ssml)
                first = await turn.next_pcm()
                if first is None:
                    raise EngineError("edge: the service ended the turn without audio")
                return turn, first
            except _StaleConnectionError:
                self._close_later(ws)
                if not pre_opened:
                    raise
                log.info("edge: the pre-opened connection had gone; opening a fresh one")
            except BaseException:
                self._close_later(ws)
                raise
            ws, pre_opened = await self._connect(), False

    async def _take(self) -> tuple[WebSocket, bool]:
        """The pre-opened connection when there is a live one, else a new one."""
        spare, self._spare = self._spare, None
        if spare is not None:
            if spare.timer is not None:
                spare.timer.cancel()
            ws = await spare.task
            if not ws.closed:
                return ws, True
        return await self._connect(), False

    async def _connect(self) -> WebSocket:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(trust_env=True)
        for attempt in (1, 2):
            try:
                ws = await self._session.ws_connect(
                    connection_url(self.url),
                    compress=15,
                    headers=DRM.headers_with_muid(WSS_HEADERS),
                    ssl=_SSL if self.url.startswith("wss:") else False,
                    timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
                )
            except aiohttp.WSServerHandshakeError as error:
                if error.status != 403 or attempt == 2:
                    raise
                DRM.handle_client_response_error(error)  # the clock is off: correct and retry
                continue
            self.connections_opened += 1
            return ws
        raise AssertionError("unreachable")

    def _spare_opened(self, task: asyncio.Task[WebSocket]) -> None:
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            self._failed(f"edge: could not connect: {_why(error)}")

    def _drop_spare(self, spare: _Spare) -> None:
        if self._spare is spare:
            self._spare = None
        spare.task.add_done_callback(self._close_spare)

    def _close_spare(self, task: asyncio.Task[WebSocket]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._close_later(task.result())

    def _failed(self, reason: str) -> None:
        self.last_error = reason
        self._down_until = self._clock() + COOLDOWN_S
        log.warning("%s; edge is skipped for %.0fs", reason, COOLDOWN_S)
        if self._spare is not None:
            spare, self._spare = self._spare, None
            if spare.timer is not None:
                spare.timer.cancel()
            self._drop_spare(spare)

    def _close_later(self, ws: WebSocket) -> None:
        """Close without waiting for the service's reply, so a cancel returns at once."""
        task = asyncio.get_running_loop().create_task(_close(ws))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        if self._spare is not None:
            spare, self._spare = self._spare, None
            spare.task.cancel()
            self._drop_spare(spare)
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
