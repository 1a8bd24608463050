"""Bad input at the gateway gets a clear error or close code, and never harms another session."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import Clip, clip_named
from tests.e2e.conftest import RunningCluster
from voice.client import ClipAudio, talk
from voice.opus import OpusEncoder
from voice.wer import normalize_transcript

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def _next_error(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.receive(), 5.0)
        assert message.type == aiohttp.WSMsgType.TEXT, message
        data: dict[str, Any] = json.loads(message.data)
        if data["type"] == "error":
            return data


async def _settles_at_zero(http: aiohttp.ClientSession, url: str, stage: str) -> bool:
    gauge = f"voice_{stage}_active_streams "
    for _ in range(50):
        async with http.get(url) as response:
            text = await response.text()
        value = next(
            float(line.split()[-1]) for line in text.splitlines() if line.startswith(gauge)
        )
        if value == 0:
            return True
        await asyncio.sleep(0.1)
    return False


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
    clip = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(cluster.url())
        frame = clip.sample_rate // 50 * 2
        for start in range(0, len(clip.pcm), frame):
            await ws.send_bytes(clip.pcm[start : start + frame].ljust(frame, b"\x00"))
            await asyncio.sleep(0.02)
        for _ in range(40):  # silence until the agent starts answering, then vanish
            await ws.send_bytes(b"\x00" * frame)
            await asyncio.sleep(0.02)
        await ws.close()
    async with aiohttp.ClientSession() as http:
        for _ in range(50):
            async with http.get(f"{cluster.cluster.http_url}/health") as response:
                if (await response.json())["sessions"] == 0:
                    break
            await asyncio.sleep(0.1)
        async with http.get(f"{cluster.cluster.http_url}/health") as response:
            assert (await response.json())["sessions"] == 0
        # Every stage's stream of that session is closed too: their gauges are back to zero.
        for name, port in cluster.cluster.config.metrics_ports.items():
            assert await _settles_at_zero(http, f"http://127.0.0.1:{port}/metrics", name)
    # And the stages still serve a new session fully.
    result = await talk(cluster.url(), clip)
    assert result.latency_ms is not None
