"""The phone transport over a real WebSocket (aiohttp on loopback), Twilio's side scripted:
the start's token, audio both ways, marks and what the caller heard, clear, DTMF, malformed
messages, and hanging up once the last mark is back."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.transports.base import ClientAudio, ClientDigits, ClientStop, StartRequest
from gateway.transports.twilio import TwilioTransport
from gateway.transports.twilio_messages import StreamStart
from gateway.turns.actions import CloseAudio, OpenAudio, SendAudio, SendEvent

pytestmark = pytest.mark.unit


class Line:
    """The gateway's side (a transport) and Twilio's side (a client socket) of one stream."""

    def __init__(self) -> None:
        self.transport: asyncio.Future[TwilioTransport] = asyncio.Future()
        self.done = asyncio.Event()
        self.errors: list[str] = []
        self.ws: aiohttp.ClientWebSocketResponse

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.transport.set_result(
            TwilioTransport(
                ws,
                output_rate=24000,
                verify_start=lambda start: start.parameters.get("token") == "good",
                idle_timeout_s=5.0,
                start_timeout_s=5.0,
                count_error=self.errors.append,
                name="test",
            )
        )
        await self.done.wait()
        return ws

    async def send(self, event: str, **fields: Any) -> None:
        await self.ws.send_str(json.dumps({"event": event, "streamSid": "MZ1", **fields}))

    async def start(self, token: str = "good") -> None:
        await self.ws.send_str(json.dumps({"event": "connected", "protocol": "Call"}))
        start = {
            "streamSid": "MZ1",
            "callSid": "CA1",
            "accountSid": "AC1",
            "tracks": ["inbound"],
            "customParameters": {"token": token},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self.send("start", sequenceNumber="1", start=start)

    async def messages(self, count: int) -> list[dict[str, Any]]:
        return [json.loads(await self.ws.receive_str(timeout=5)) for _ in range(count)]

    async def until_mark(self, marks: int) -> list[dict[str, Any]]:
        """Everything the gateway sends up to its ``marks``-th mark."""
        sent: list[dict[str, Any]] = []
        while sum(m["event"] == "mark" for m in sent) < marks:
            sent += await self.messages(1)
        return sent


@pytest_asyncio.fixture
async def line() -> AsyncIterator[Line]:
    line = Line()
    app = web.Application()
    app.router.add_get("/twilio/stream", line.handler)
    server = TestServer(app)
    await server.start_server()
    async with aiohttp.ClientSession() as http:
        line.ws = await http.ws_connect(server.make_url("/twilio/stream"))
        yield line
        line.done.set()
        await line.ws.close()
    await server.close()


def tone(rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


async def test_a_stream_without_the_calls_token_is_closed(line: Line) -> None:
    transport = await line.transport
    await line.start(token="forged")
    reader = asyncio.create_task(transport.receive())
    message = await line.ws.receive(timeout=5)  # (the client answers the close meanwhile)
    assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1008
    assert await asyncio.wait_for(reader, 5.0) is None
    assert line.errors == ["unauthorized"]


async def test_audio_both_ways_with_marks_clear_and_what_was_heard(line: Line) -> None:
    transport = await line.transport
    await line.start()
    assert await transport.receive() == StartRequest()
    # The caller's 20 ms of mu-law arrive as 20 ms of PCM16 at 16 kHz (after soxr's delay).
    payload = base64.b64encode(b"\xff" * 160).decode()
    got = 0
    for _ in range(5):
        await line.send("media", media={"track": "inbound", "payload": payload})
        item = await transport.receive()
        assert isinstance(item, ClientAudio)
        got += len(item.pcm)
    assert 0 < got <= 5 * 640 and transport.input_rate == 16000
    # A reply of two chunks at 24 kHz: 20 ms mu-law frames, a mark after each chunk.
    await transport.send(OpenAudio(24000))
    await transport.send(SendAudio(tone(24000, 0.2), "Hello there."))
    await transport.send(SendAudio(tone(24000, 0.2), "How can I help?"))
    sent = await line.until_mark(2)
    media = [m for m in sent if m["event"] == "media"]
    marks = [m["mark"]["name"] for m in sent if m["event"] == "mark"]
    assert marks == ["r1.1", "r1.2"] and sent[0]["event"] == "media"
    assert all(len(base64.b64decode(m["media"]["payload"])) == 160 for m in media)
    assert 17 <= len(media) <= 20  # 400 ms less what the resampler and frames still hold
    assert all(m["streamSid"] == "MZ1" for m in sent)
    # Nothing played yet: nothing heard. The first mark back: the first chunk was.
    assert transport.heard_text("(the machine's estimate)") == ""
    await line.send("mark", mark={"name": "r1.1"})
    await line.send("media", media={"track": "inbound", "payload": payload})
    assert isinstance(await transport.receive(), ClientAudio)
    assert transport.heard_text("(estimate)") == "Hello there."
    assert transport.heard_text("") == ""  # none of the reply's audio went out
    # A barge-in: clear; the phone then echoes the cleared mark, which no longer counts.
    await transport.send(SendEvent("interrupted", {"turn_id": "t-1"}))
    assert (await line.messages(1)) == [{"event": "clear", "streamSid": "MZ1"}]
    await line.send("mark", mark={"name": "r1.2"})
    await line.send("stop", stop={"accountSid": "AC1", "callSid": "CA1"})
    assert await transport.receive() == ClientStop()
    assert transport.heard_text("(estimate)") == "Hello there."
    # The interrupted reply's late audio and end go nowhere.
    await transport.send(SendAudio(tone(24000, 0.1), "more"))
    await transport.send(CloseAudio())
    assert line.errors == []


async def test_keys_are_gathered_until_a_pause_or_hash(line: Line) -> None:
    transport = await line.transport
    await line.start()
    assert await transport.receive() == StartRequest()
    for digit in "12#":
        await line.send("dtmf", dtmf={"track": "inbound_track", "digit": digit})
    item = await transport.receive()
    assert isinstance(item, ClientDigits) and item.digits == "12#"
    await line.send("dtmf", dtmf={"track": "inbound_track", "digit": "7"})
    item = await asyncio.wait_for(transport.receive(), 3.0)  # after the 1 s pause
    assert isinstance(item, ClientDigits) and item.digits == "7"


async def test_malformed_messages_are_dropped_and_the_call_goes_on(line: Line) -> None:
    transport = await line.transport
    await line.ws.send_str('{"event": "media", "media": {"payload": "AAAA"}}')  # before start
    await line.start()
    assert await transport.receive() == StartRequest()
    await line.ws.send_str("{not json")
    await line.ws.send_bytes(b"\x00\x01")
    await line.ws.send_str('{"event": "media", "media": {"payload": "%%%"}}')
    await line.ws.send_str('{"event": "dtmf", "dtmf": {"digit": "A"}}')
    await line.ws.send_str('{"event": "surprise"}')
    await line.start()  # a second start
    payload = base64.b64encode(b"\xff" * 160).decode()
    await line.send("media", media={"track": "inbound", "payload": payload})
    assert isinstance(await transport.receive(), ClientAudio)
    assert line.errors == [
        "not_started",
        "invalid_json",
        "invalid_message",
        "invalid_audio",
        "invalid_message",
        "unknown_type",
        "already_started",
    ]


async def test_hang_up_waits_for_the_last_mark(line: Line) -> None:
    transport = await line.transport
    await line.start()
    assert await transport.receive() == StartRequest()
    await transport.send(OpenAudio(24000))
    await transport.send(SendAudio(tone(24000, 0.4), "Goodbye!"))
    await transport.send(CloseAudio())
    reader = asyncio.create_task(transport.receive())
    # The agent's end_call: the clock says the goodbye has played; the marks say it has not.
    hang_up = asyncio.create_task(transport.hang_up(at=time.perf_counter(), reason="goodbye"))
    sent = await line.until_mark(2)
    marks = [m["mark"]["name"] for m in sent if m["event"] == "mark"]
    assert marks == ["r1.1", "r1.end"]  # the chunk, then what the close flushed
    await asyncio.sleep(0.2)
    assert not hang_up.done()  # the goodbye is still playing
    await line.send("mark", mark={"name": "r1.1"})
    await asyncio.sleep(0.1)
    assert not hang_up.done()  # the end of it still is
    await line.send("mark", mark={"name": "r1.end"})
    await asyncio.wait_for(hang_up, 5.0)
    message = await line.ws.receive(timeout=5)
    assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1000
    assert await asyncio.wait_for(reader, 5.0) is None


def test_the_start_check_sees_the_calls_parameters() -> None:
    start = StreamStart("MZ1", "CA1", "AC1", ("inbound",), {"token": "t"})
    assert start.parameters["token"] == "t"
