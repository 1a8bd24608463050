"""Contract test of the Edge TTS adapter against a local server that speaks the Edge protocol.

The server below, on 127.0.0.1, plays the part of Microsoft's read-aloud service as edge-tts's
``communicate.py`` expects it to behave: the WebSocket handshake with the trusted client token
and the ``Sec-MS-GEC`` parameters, then per request a ``speech.config`` and an ``ssml``
message from the client, answered by ``turn.start``, ``audio.metadata``, binary ``Path:audio``
messages carrying MP3 (a real MP3 encoded here with PyAV), an empty end-of-stream audio
message and ``turn.end``. The adapter is pointed at it through ``EDGE_TTS_URL``; nothing here
reaches the real network.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web
from edge_tts.constants import TRUSTED_CLIENT_TOKEN

from services.tts.__main__ import build_chain, load_engine
from services.tts.chain import EngineChain
from services.tts.edge import EdgeEngine
from services.tts.piper import PiperEngine
from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from services.tts.settings import TtsSettings
from tests.integration.conftest import serving
from tests.integration.test_tts_servicer import Stream, pcm_of, speak_turn
from voice.errors import EngineError
from voice.v1 import tts_pb2_grpc

pytestmark = pytest.mark.integration

RATE = 24000
PATH = "/consumer/speech/synthesize/readaloud/edge/v1"
TONE_S = 1.0


def encode_tone(seconds: float) -> bytes:
    """A 440 Hz tone as the service sends it: MP3, 24 kHz mono, 48 kbit/s, no tags."""
    t = np.arange(int(RATE * seconds)) / RATE
    samples = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    options = {"id3v2_version": "0", "write_xing": "0"}
    with av.open(buffer, "w", format="mp3", options=options) as container:
        stream = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        stream.bit_rate = 48000
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def _text_message(request_id: str, path: str, body: str) -> str:
    return (
        f"X-RequestId:{request_id}\r\nContent-Type:application/json; charset=utf-8\r\n"
        f"Path:{path}\r\n\r\n{body}"
    )


def _audio_message(request_id: str, audio: bytes) -> bytes:
    content_type = "Content-Type:audio/mpeg\r\n" if audio else ""
    header = f"X-RequestId:{request_id}\r\n{content_type}X-StreamId:s1\r\nPath:audio\r\n".encode()
    return len(header).to_bytes(2, "big") + header + audio


def _headers(message: str) -> tuple[dict[str, str], str]:
    head, _, body = message.partition("\r\n\r\n")
    return dict(line.split(":", 1) for line in head.split("\r\n")), body


@dataclass
class Connection:
    query: dict[str, list[str]]
    headers: dict[str, str]
    messages: list[str] = field(default_factory=list)


class FakeEdgeService:
    """The read-aloud service's side of the protocol, with ways to misbehave."""

    def __init__(self, mp3: bytes) -> None:
        self.mp3 = mp3
        # ok | close_before_audio | end_without_audio | reject | silent | drop_first_connection
        self.mode = "ok"
        self.piece_bytes = 1200
        self.piece_delay_s = 0.0
        self.hold_after_first_piece: asyncio.Event | None = None
        self.connections: list[Connection] = []
        self.closed = asyncio.Event()
        self.stopping = asyncio.Event()
        self.url = ""
        self._runner: web.AppRunner | None = None

    @property
    def requests(self) -> int:
        return sum(1 for c in self.connections for m in c.messages if "Path:ssml" in m)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"ws://127.0.0.1:{port}{PATH}?TrustedClientToken={TRUSTED_CLIENT_TOKEN}"

    async def stop(self) -> None:
        self.stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.mode == "reject":
            return web.Response(status=403, headers={"Date": "Tue, 01 Jan 2030 00:00:00 GMT"})
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        connection = Connection(parse_qs(request.query_string), dict(request.headers))
        self.connections.append(connection)
        try:
            if self.mode == "drop_first_connection" and len(self.connections) == 1:
                await ws.close()
                return ws
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                connection.messages.append(message.data)
                headers, _ = _headers(message.data)
                if headers.get("Path") == "ssml":
                    await self._answer(ws, headers["X-RequestId"])
        finally:
            self.closed.set()
        return ws

    async def _answer(self, ws: web.WebSocketResponse, request_id: str) -> None:
        if self.mode == "silent":
            await self.stopping.wait()
            return
        await ws.send_str(_text_message(request_id, "turn.start", '{"context":{}}'))
        if self.mode == "close_before_audio":
            await ws.close(code=1011, message=b"internal error")
            return
        if self.mode != "end_without_audio":
            metadata = {"Metadata": [{"Type": "SessionEnd", "Data": {"Offset": 0}}]}
            await ws.send_str(_text_message(request_id, "audio.metadata", json.dumps(metadata)))
            for start in range(0, len(self.mp3), self.piece_bytes):
                piece = self.mp3[start : start + self.piece_bytes]
                await ws.send_bytes(_audio_message(request_id, piece))
                if start == 0 and self.hold_after_first_piece is not None:
                    await self.hold_after_first_piece.wait()
                await asyncio.sleep(self.piece_delay_s)
            await ws.send_bytes(_audio_message(request_id, b""))
        await ws.send_str(_text_message(request_id, "turn.end", "{}"))


@pytest.fixture(scope="module")
def mp3() -> bytes:
    return encode_tone(TONE_S)


@pytest.fixture
async def service(mp3: bytes) -> AsyncIterator[FakeEdgeService]:
    fake = FakeEdgeService(mp3)
    await fake.start()
    assert fake.url.startswith("ws://127.0.0.1:")  # never the real service
    yield fake
    await fake.stop()


@pytest.fixture
async def edge(service: FakeEdgeService) -> AsyncIterator[EdgeEngine]:
    engine = EdgeEngine(url=service.url, first_audio_timeout_s=2.0)
    yield engine
    await engine.aclose()


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    engine = PiperEngine(threads=1)
    engine.warm_up()
    return engine


def dominant_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / RATE)[int(np.argmax(spectrum))])


async def test_audio_is_streamed_and_decoded_to_pcm_as_it_arrives(
    service: FakeEdgeService, edge: EdgeEngine
) -> None:
    service.hold_after_first_piece = asyncio.Event()
    stream = edge.stream("Fish & chips <now>", "en-GB-SoniaNeural")
    first = await anext(stream)
    # The service is still holding back all but its first MP3 message.
    assert first and not service.hold_after_first_piece.is_set()
    service.hold_after_first_piece.set()
    pcm = first + b"".join([piece async for piece in stream])
    assert edge.sample_rate == RATE
    assert TONE_S * RATE <= len(pcm) // 2 <= (TONE_S + 0.1) * RATE
    assert abs(dominant_hz(pcm) - 440) < 5


async def test_the_request_is_what_edge_tts_sends(
    service: FakeEdgeService, edge: EdgeEngine
) -> None:
    _ = [piece async for piece in edge.stream("Fish & chips <now>", "en-GB-SoniaNeural")]
    (connection,) = service.connections
    query = connection.query
    assert query["TrustedClientToken"] == [TRUSTED_CLIENT_TOKEN]
    assert re.fullmatch(r"[0-9a-f]{32}", query["ConnectionId"][0])
    assert re.fullmatch(r"[0-9A-F]{16}-[0-9A-F]{64}", query["Sec-MS-GEC"][0])
    assert query["Sec-MS-GEC-Version"][0].startswith("2-")
    assert connection.headers["Origin"] == "chrome-extension://jdiccldimpdaibmpdkjnbmckianbfold"
    assert connection.headers["Cookie"].startswith("muid=")
    config, ssml = connection.messages
    config_headers, config_body = _headers(config)
    assert config_headers["Path"] == "speech.config"
    assert (
        json.loads(config_body)["context"]["synthesis"]["audio"]["outputFormat"]
        == "audio-24khz-48kbitrate-mono-mp3"
    )
    ssml_headers, ssml_body = _headers(ssml)
    assert ssml_headers["Path"] == "ssml"
    assert ssml_headers["Content-Type"] == "application/ssml+xml"
    assert re.fullmatch(r"[0-9a-f]{32}", ssml_headers["X-RequestId"])
    assert "Microsoft Server Speech Text to Speech Voice (en-GB, SoniaNeural)" in ssml_body
    assert "Fish &amp; chips &lt;now&gt;" in ssml_body


async def test_the_default_voice_is_the_configured_one(
    service: FakeEdgeService, edge: EdgeEngine
) -> None:
    _ = [piece async for piece in edge.stream("Hello.")]
    assert "(en-US, AriaNeural)" in service.connections[0].messages[1]


async def test_the_connection_is_opened_ahead_of_need_one_per_request(
    service: FakeEdgeService, edge: EdgeEngine
) -> None:
    edge.prepare()
    for _ in range(100):
        if service.connections:
            break
        await asyncio.sleep(0.01)
    assert len(service.connections) == 1 and service.requests == 0  # open before any text
    _ = [piece async for piece in edge.stream("First chunk.")]
    assert len(service.connections) == 1 and service.requests == 1  # the request used it
    _ = [piece async for piece in edge.stream("Second chunk.")]
    assert len(service.connections) == 2
    assert [sum("Path:ssml" in m for m in c.messages) for c in service.connections] == [1, 1]
    assert edge.connections_opened == 2


async def test_a_pre_opened_connection_that_went_away_is_replaced(
    service: FakeEdgeService, edge: EdgeEngine
) -> None:
    service.mode = "drop_first_connection"
    edge.prepare()
    await asyncio.sleep(0.1)
    pcm = b"".join([piece async for piece in edge.stream("Hello.")])
    assert pcm and len(service.connections) == 2 and service.requests == 1
    assert edge.available()


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("close_before_audio", "closed the connection"),
        ("end_without_audio", "without audio"),
        ("reject", "403"),
        ("silent", "no audio within"),
    ],
)
async def test_a_failure_before_audio_raises_and_cools_the_engine_down(
    service: FakeEdgeService, mode: str, reason: str
) -> None:
    service.mode = mode
    engine = EdgeEngine(url=service.url, first_audio_timeout_s=0.5)
    try:
        with pytest.raises(EngineError, match=reason):
            _ = [piece async for piece in engine.stream("Hello.")]
        assert not engine.available()
        with pytest.raises(EngineError, match="cooling down"):
            _ = [piece async for piece in engine.stream("Hello.")]
    finally:
        await engine.aclose()


def _register(chain: EngineChain) -> object:
    servicer = TextToSpeechServicer(chain, ChunkingConfig(2, 4, 20))
    return lambda server: tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(servicer, server)


@pytest.mark.parametrize("mode", ["close_before_audio", "end_without_audio", "reject"])
async def test_the_service_failing_before_audio_falls_back_to_piper(
    service: FakeEdgeService, edge: EdgeEngine, piper: PiperEngine, mode: str
) -> None:
    service.mode = mode
    async with serving(_register(EngineChain([edge, piper]))) as channel:  # type: ignore[arg-type]
        stream = Stream(channel, RATE)
        first = await speak_turn(stream, "t1", "Hello there, how are you today?")
        contacted = len(service.connections)
        second = await speak_turn(stream, "t2", "Still here.")
        stream.close()
    for events in (first, second):
        assert events[0].start.engine == "piper" and events[0].start.sample_rate == RATE
        assert pcm_of(events)
        assert not events[-1].end.error and not events[-1].end.cancelled
    # The second turn went straight to Piper: Edge is cooling down after its failure.
    assert len(service.connections) == contacted


async def test_edge_speaks_the_turn_when_the_service_works(
    service: FakeEdgeService, edge: EdgeEngine, piper: PiperEngine
) -> None:
    async with serving(_register(EngineChain([edge, piper]))) as channel:  # type: ignore[arg-type]
        stream = Stream(channel, RATE)
        events = await speak_turn(stream, "t1", "Hello there, how are you today?")
        stream.close()
    assert events[0].start.engine == "edge"
    frames = pcm_of(events)
    assert all(len(frame) == RATE // 50 * 2 for frame in frames[:-1])
    # Two chunks ("Hello there," and the rest), each a second of tone.
    assert 2 * TONE_S <= sum(map(len, frames)) / 2 / RATE <= 2 * TONE_S + 0.2
    assert service.requests == 2


async def test_cancelling_mid_stream_closes_the_connection_and_sends_nothing_more(
    service: FakeEdgeService, edge: EdgeEngine, piper: PiperEngine
) -> None:
    service.piece_bytes = 300  # 50 ms of MP3 per message...
    service.piece_delay_s = 0.05  # ...in real time
    async with serving(_register(EngineChain([edge, piper]))) as channel:  # type: ignore[arg-type]
        stream = Stream(channel, RATE)
        stream.text("t1", "Hello there, how are you today?")
        start = await stream.read()
        audio = await stream.read()
        stream.cancel("t1")
        events = await stream.until_end("t1")
        await asyncio.wait_for(service.closed.wait(), 5)
        stream.close()
        rest = await stream.rest()
    assert start.start.engine == "edge" and audio.HasField("audio")
    assert events[-1].end.cancelled
    assert not [e for e in rest if e.HasField("audio")]
    assert service.requests == 1


async def test_edge_tts_url_points_the_adapter_at_the_server(service: FakeEdgeService) -> None:
    settings = TtsSettings.from_env(
        {"TTS_ENGINES": "edge", "EDGE_TTS_URL": service.url, "EDGE_TTS_VOICE": "en-US-GuyNeural"}
    )
    engine = await load_engine("edge", settings)
    chain = build_chain([engine], settings)
    try:
        voice = chain.turn("", RATE)
        pcm = b"".join([piece async for piece in voice.speak("Hi.", starts_sentence=True)])
    finally:
        await chain.aclose()
    assert pcm and "(en-US, GuyNeural)" in service.connections[0].messages[1]
