"""Faults with the real cluster: a stage killed mid-turn, and SIGTERM on the gateway."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from launcher.cluster import Cluster, ClusterConfig
from tests.conftest import Clip, clip_named
from voice.client import ClipAudio

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


class LiveSession:
    """A client that stays connected across turns and records everything it receives."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self._http = http
        self._url = url
        self.events: list[dict[str, Any]] = []
        self.audio_bytes = 0
        self.close_code: int | None = None

    async def __aenter__(self) -> LiveSession:
        self.ws = await self._http.ws_connect(self._url)
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        async for message in self.ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                self.audio_bytes += len(message.data)
            elif message.type == aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(message.data))
        self.close_code = self.ws.close_code

    async def say(self, clip: ClipAudio, silence_s: float = 1.5) -> None:
        frame = clip.sample_rate // 50 * 2
        pcm = clip.pcm + b"\x00" * int(clip.sample_rate * 2 * silence_s)
        started = time.perf_counter()
        for index, start in enumerate(range(0, len(pcm), frame)):
            if self.ws.closed:
                return
            await self.ws.send_bytes(pcm[start : start + frame].ljust(frame, b"\x00"))
            await asyncio.sleep(max(0.0, started + (index + 1) * 0.02 - time.perf_counter()))

    async def keep_listening(self, seconds: float, clip_rate: int = 16000) -> None:
        await self.say(ClipAudio(b"", clip_rate), silence_s=seconds)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    async def wait_for(self, check: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while not check():
            if time.perf_counter() > deadline:
                raise AssertionError(f"timed out; events so far: {self.types()}")
            await asyncio.sleep(0.05)


async def answered_again(session: LiveSession, clip: ClipAudio) -> None:
    turns_before = session.types().count("turn_complete")
    await session.say(clip)
    await session.wait_for(lambda: session.types().count("turn_complete") > turns_before, 30.0)
    assert not session.ws.closed


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    log_path = tmp_path_factory.mktemp("faults") / "cluster.log"
    with log_path.open("w") as log:
        config = ClusterConfig.on_free_ports(output=log, env={"OTEL_SDK_DISABLED": "true"})
        async with Cluster(config) as running:
            yield running


async def test_a_stage_killed_mid_turn_gives_an_error_and_sessions_recover(
    cluster: Cluster, speech_clips: list[Clip]
) -> None:
    clip = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    url = f"{cluster.ws_url}/ws/{cluster.token()}"
    async with (
        aiohttp.ClientSession() as http,
        LiveSession(http, url) as talker,
        LiveSession(http, url) as bystander,
    ):
        await talker.say(clip, silence_s=0.0)
        listening = asyncio.create_task(talker.keep_listening(8.0))
        await talker.wait_for(lambda: "agent_text" in talker.types(), 15.0)
        await cluster.kill("llm")
        await talker.wait_for(
            lambda: any(e.get("code") == "upstream_unavailable" for e in talker.events), 10.0
        )
        await bystander.keep_listening(0.5)  # the other session is still connected
        assert bystander.close_code is None and not bystander.ws.closed
        async with http.get(f"{cluster.http_url}/health/live") as live:
            assert live.status == 200  # the gateway stays up
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)

        await cluster.restart("llm")
        for session in (talker, bystander):
            await answered_again(session, clip)
        assert talker.audio_bytes > 0 and bystander.audio_bytes > 0


async def test_sigterm_on_the_gateway_lets_the_turn_finish_then_closes_with_1001(
    cluster: Cluster, speech_clips: list[Clip]
) -> None:
    clip = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    url = f"{cluster.ws_url}/ws/{cluster.token()}"
    async with aiohttp.ClientSession() as http, LiveSession(http, url) as session:
        await session.say(clip, silence_s=0.0)
        listening = asyncio.create_task(session.keep_listening(10.0))
        await session.wait_for(lambda: "transcript" in session.types(), 15.0)
        await session.wait_for(lambda: any(e.get("final") for e in session.events), 15.0)
        code = await cluster.terminate("gateway")
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await session.wait_for(lambda: session.close_code is not None, 5.0)
    assert code == 0
    assert "turn_complete" in session.types()  # the turn in progress was finished
    assert session.close_code == 1001
    await cluster.restart("gateway")
