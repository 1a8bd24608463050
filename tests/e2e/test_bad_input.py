"""Bad input at the gateway gets a clear error or close code, and never harms another session."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from tests.conftest import Clip, clip_named
from tests.e2e.conftest import RunningCluster
from tools.client import ClipAudio, talk
from tools.wer import normalize_transcript
from voice.opus import OpusEncoder

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def _next_error(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.receive(), 5.0)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        data: dict[str, Any] = json.loads(message.data)
        if data["type"] == "error":
            return data


def _metric(text: str, name: str) -> float:
    """A sample's value in Prometheus text (0 when absent: a labelled counter never touched)."""
    prefix = name + " "
    return next(
        (float(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix)), 0.0
    )


async def _read_metric(http: aiohttp.ClientSession, url: str, name: str) -> float:
    async with http.get(url) as response:
        return _metric(await response.text(), name)


async def _settles_at(http: aiohttp.ClientSession, url: str, name: str, value: float) -> float:
    """Polls ``name`` for up to 5 s until it reads ``value``; returns the last reading."""
    reading = await _read_metric(http, url, name)
    for _ in range(50):
        if reading == value:
            break
        await asyncio.sleep(0.1)
        reading = await _read_metric(http, url, name)
    return reading


async def _sessions(http: aiohttp.ClientSession, cluster: RunningCluster, settle_at: int) -> int:
    """The gateway's open sessions (/health), polled for up to 5 s until ``settle_at``."""
    for _ in range(50):
        async with http.get(f"{cluster.cluster.http_url}/health") as response:
            sessions = int((await response.json())["sessions"])
        if sessions == settle_at:
            break
        await asyncio.sleep(0.1)
    return sessions


async def _start(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Past the greeting and a ``start``: the gateway then opens the session's stage streams."""
    assert (await ws.receive_json(timeout=10))["type"] == "ready"
    await ws.send_str(json.dumps({"type": "start"}))
    assert (await ws.receive_json(timeout=10))["type"] == "ready"


@dataclass
class Heard:
    """What a client got on its socket: the JSON events in order, and how much binary audio."""

    events: list[dict[str, Any]] = field(default_factory=list)
    audio_bytes: int = 0

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == kind]

    def answer_started(self) -> bool:
        return self.audio_bytes > 0 or any(e["text"].strip() for e in self.of("agent_text"))


async def _speak(
    ws: aiohttp.ClientWebSocketResponse,
    clip: ClipAudio,
    done: Callable[[Heard], bool],
    timeout_s: float = 60.0,
) -> Heard:
    """Streams the clip in real time, then silence, reading the socket until ``done``."""
    heard = Heard()
    frame = clip.sample_rate // 50 * 2

    async def send() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for index in itertools.count():
            pcm = clip.pcm[index * frame : (index + 1) * frame]
            await asyncio.sleep(max(0.0, started + (index + 1) * 0.02 - loop.time()))
            await ws.send_bytes(pcm.ljust(frame, b"\x00"))

    sender = asyncio.create_task(send())
    try:
        async with asyncio.timeout(timeout_s):
            while not done(heard):
                message = await ws.receive()
                if message.type == aiohttp.WSMsgType.BINARY:
                    heard.audio_bytes += len(message.data)
                elif message.type == aiohttp.WSMsgType.TEXT:
                    heard.events.append(json.loads(message.data))
                else:
                    raise AssertionError(f"the socket ended: {message}; heard {heard.events}")
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return heard


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "invalid_json"),
        ("[1, 2, 3]", "invalid_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"type": "start", "sample_rate": 12345}', "invalid_sample_rate"),
        ('{"type": "start", "sample_rate": true}', "invalid_sample_rate"),
        ('{"type": "start", "pipeline": "sideways"}', "invalid_message"),
        (b"\x01\x02\x03", "invalid_audio"),  # odd length
        (b"\x00\x00" * 10, "invalid_audio"),  # 1.25 ms: shorter than 10 ms
        (b"\x00\x00" * 16000, "invalid_audio"),  # 1 s: longer than 200 ms
    ],
)
async def test_a_bad_frame_gets_a_clear_error_and_the_session_stays_open(
    cluster: RunningCluster, frame: str | bytes, code: str
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(cluster.url()) as ws:
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        error = await _next_error(ws)
        assert error["code"] == code and error["message"]
        await ws.send_str(json.dumps({"type": "dance"}))  # still answered: the session lives
        assert (await _next_error(ws))["code"] == "unknown_type"


@pytest.mark.parametrize(
    "frame",
    [b"\xff\xfe not an opus packet at all", b"\x00" * 4096],
    ids=["garbage", "too-large"],
)
async def test_an_opus_session_refuses_what_is_not_opus_and_goes_on(
    cluster: RunningCluster, frame: bytes
) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(cluster.url()) as ws:
        await ws.send_str(json.dumps({"type": "start", "codec": "opus"}))
        await ws.send_bytes(frame)
        error = await _next_error(ws)
        assert error["code"] == "invalid_audio" and "Opus" in error["message"]
        encoder = OpusEncoder(16000)
        for packet in encoder.encode(b"\x00\x00" * 1600):  # 100 ms of silence, valid
            await ws.send_bytes(packet)
        await ws.send_str(json.dumps({"type": "dance"}))
        assert (await _next_error(ws))["code"] == "unknown_type"  # and nothing about the audio


async def test_an_oversized_frame_closes_with_1009(cluster: RunningCluster) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(cluster.url()) as ws:
        await ws.send_bytes(b"\x00" * (100 * 1024))  # over the 64 KiB default
        message = await asyncio.wait_for(ws.receive(), 5.0)
        while message.type == aiohttp.WSMsgType.TEXT:
            message = await asyncio.wait_for(ws.receive(), 5.0)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 1009


async def test_start_after_audio_is_refused(cluster: RunningCluster) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(cluster.url()) as ws:
        await ws.send_bytes(b"\x00\x00" * 320)
        await ws.send_str(json.dumps({"type": "start"}))
        assert (await _next_error(ws))["code"] == "already_started"


async def test_garbage_in_one_session_does_not_disturb_another(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")

    async def vandal() -> int:
        sent = 0
        async with aiohttp.ClientSession() as http, http.ws_connect(cluster.url()) as ws:
            for index in range(400):  # a flood of tiny, odd and malformed frames
                if index % 3 == 0:
                    await ws.send_bytes(b"\x01")
                elif index % 3 == 1:
                    await ws.send_str("{")
                else:
                    await ws.send_bytes(b"\x00\x00" * 160)  # 10 ms of silence: valid
                sent += 1
                await asyncio.sleep(0.005)
        return sent

    result, sent = await asyncio.gather(
        talk(cluster.url(), ClipAudio.from_wav(clip.path)), vandal()
    )
    assert sent == 400
    assert normalize_transcript(result.transcript) == clip.transcript_normalized
    assert result.agent_text and result.latency_ms is not None and not result.errors


async def test_a_client_that_vanishes_mid_turn_leaves_nothing_behind(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    """A client gone without a close frame while its answer streams: its turn is stopped, its
    stage streams closed, and a session open beside it all along is untouched."""
    reference = clip_named(speech_clips, "036_")
    clip = ClipAudio.from_wav(reference.path)
    gateway = f"{cluster.cluster.http_url}/metrics"
    interrupted = 'voice_gateway_turns_total{outcome="interrupted"}'
    stages = {
        f"voice_{name}_active_streams": f"http://127.0.0.1:{port}/metrics"
        for name, port in cluster.cluster.config.metrics_ports.items()
    }
    async with aiohttp.ClientSession() as http, http.ws_connect(cluster.url()) as bystander:
        await _start(bystander)
        interrupted_before = await _read_metric(http, gateway, interrupted)
        vandal_http = aiohttp.ClientSession()
        try:
            vandal = await vandal_http.ws_connect(cluster.url())
            await _start(vandal)
            # Both sessions hold a stream at every stage.
            for gauge, url in stages.items():
                assert await _settles_at(http, url, gauge, 2) == 2, gauge
            heard = await _speak(vandal, clip, Heard.answer_started)
        finally:
            # Vanish: the TCP connection drops, no close frame, the moment the answer began.
            await vandal_http.close()
        # Evidence the turn was under way, not over: its answer had begun and had not ended.
        [final] = [e for e in heard.of("transcript") if e["final"]]
        assert normalize_transcript(final["text"]) == reference.transcript_normalized
        turn_id = final["turn_id"]
        assert heard.answer_started()
        assert not heard.of("turn_complete") and not heard.of("audio_end"), heard.events
        assert {e["turn_id"] for e in heard.of("agent_text")} <= {turn_id}
        # The gateway stopped that turn as one the user was hearing ...
        assert await _settles_at(http, gateway, interrupted, interrupted_before + 1) == (
            interrupted_before + 1
        )
        # ... and closed the vandal's stream at every stage; the bystander's stay open.
        for gauge, url in stages.items():
            assert await _settles_at(http, url, gauge, 1) == 1, gauge
        assert await _sessions(http, cluster, settle_at=1) == 1
        # The bystander, open all along, is answered in full on the same socket.
        answer = await _speak(bystander, clip, lambda h: bool(h.of("turn_complete")))
        finals = [e["text"] for e in answer.of("transcript") if e["final"]]
        assert [normalize_transcript(t) for t in finals] == [reference.transcript_normalized]
        assert "".join(e["text"] for e in answer.of("agent_text")).strip()
        assert answer.audio_bytes > 0
        assert not answer.of("error") and not answer.of("interrupted"), answer.events
        assert await _read_metric(http, gateway, interrupted) == interrupted_before + 1
    async with aiohttp.ClientSession() as http:
        # Once the bystander has gone too, nothing is left open anywhere.
        for gauge, url in stages.items():
            assert await _settles_at(http, url, gauge, 0) == 0, gauge
        assert await _sessions(http, cluster, settle_at=0) == 0
    # And a new session is served fully.
    result = await talk(cluster.url(), clip)
    assert normalize_transcript(result.transcript) == reference.transcript_normalized
    assert result.agent_text and result.audio and not result.errors
