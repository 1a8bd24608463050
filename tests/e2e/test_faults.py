"""Faults with the real cluster: a stage killed mid-turn, and SIGTERM on the gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from launcher.cluster import Cluster, ClusterConfig
from tests.conftest import Clip, clip_named
from voice.client import ClipAudio
from voice.live import LiveSession

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def answered_again(session: LiveSession, clip: ClipAudio, attempts: int = 3) -> None:
    """Ask until answered, as a user would: a turn asked for before the session has found the
    restarted stage again (within about a second) gets `upstream_unavailable`."""
    for _ in range(attempts):
        turns_before = session.types().count("turn_complete")
        errors_before = session.types().count("error")
        await session.say(clip)

        def replied(turns: int = turns_before, errors: int = errors_before) -> bool:
            types = session.types()
            return types.count("turn_complete") > turns or types.count("error") > errors

        await session.wait_for(replied, 30.0)
        await session.keep_listening(0.5)
        if session.types().count("turn_complete") > turns_before:
            assert not session.ws.closed
            return
        errors = [e for e in session.events if e["type"] == "error"][errors_before:]
        assert all(e.get("code") == "upstream_unavailable" for e in errors), errors
    raise AssertionError(f"not answered in {attempts} attempts: {session.types()}")


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
