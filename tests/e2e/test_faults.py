"""Faults with the real cluster: a stage killed mid-turn or mid-session, and SIGTERM on the
gateway."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from launcher.cluster import Cluster, ClusterConfig
from tests.conftest import Clip, clip_named
from tools.client import ClipAudio
from tools.live import LiveSession

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


async def answered_again(session: LiveSession, clip: ClipAudio, attempts: int = 3) -> str:
    """Ask until answered, as a user would: a turn asked for before the session has found the
    restarted stage again (within about a second) gets `upstream_unavailable`.

    Returns the id of the turn that was answered."""
    for _ in range(attempts):
        turns_before = session.types().count("turn_complete")
        errors_before = session.types().count("error")
        await session.say(clip)

        def replied(turns: int = turns_before, errors: int = errors_before) -> bool:
            types = session.types()
            return types.count("turn_complete") > turns or types.count("error") > errors

        await session.wait_for(replied, 30.0)
        await session.keep_listening(0.5)
        completed = [e for e in session.events if e["type"] == "turn_complete"]
        if len(completed) > turns_before:
            assert not session.ws.closed
            return str(completed[turns_before]["turn_id"])
        errors = [e for e in session.events if e["type"] == "error"][errors_before:]
        assert all(e.get("code") == "upstream_unavailable" for e in errors), errors
    raise AssertionError(f"not answered in {attempts} attempts: {session.types()}")


@pytest.fixture(scope="module")
def cluster_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults") / "cluster.log"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(cluster_log: Path) -> AsyncIterator[Cluster]:
    with cluster_log.open("w") as log:
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
        restarted_at = time.perf_counter()
        for session in (talker, bystander):
            turn_id = await answered_again(session, clip)
            # The answer to the turn asked after the restart was heard: its own audio, all of
            # it after the restart (audio of the turn the kill cut short does not count).
            frames = session.audio_of(turn_id)
            assert frames, f"turn {turn_id}, asked after the restart, sent no audio"
            assert all(frame.at > restarted_at for frame in frames)


FRAME_S = 0.02
# How far the gateway's waterfall (end of speech -> first audio sent) may be from the client's
# own measurement (end of speech sent -> first audio frame received). The two ends of speech
# differ (Silero's last speech window against the clip's last loud 10 ms) and a busy machine
# delays sends and receives: a few hundred ms at worst. An arrival clock that kept counting
# across the stt restart is off by the whole session time before the restart, which the test
# makes sure is several times this.
WATERFALL_TOLERANCE_S = 1.0
SESSION_BEFORE_KILL_S = 8.0


@dataclass
class Spoken:
    started_at: float
    speech_end_at: float


async def speak(session: LiveSession, clip: ClipAudio, silence_s: float) -> Spoken:
    """Stream the clip as a microphone would, then silence: frame k is handed over at (k + 1)
    frames after the start, once it has been captured. Returns when the frame holding the
    clip's last voiced sample was sent: the client's own end of speech."""
    frame = int(clip.sample_rate * FRAME_S) * 2
    pcm = clip.pcm + b"\x00" * int(clip.sample_rate * 2 * silence_s)
    last_voiced_frame = int(clip.last_voiced_s() / FRAME_S - 1e-9)
    started = time.perf_counter()
    speech_end_at = started
    for index, offset in enumerate(range(0, len(pcm), frame)):
        await asyncio.sleep(max(0.0, started + (index + 1) * FRAME_S - time.perf_counter()))
        await session.ws.send_bytes(pcm[offset : offset + frame].ljust(frame, b"\x00"))
        if index == last_voiced_frame:
            speech_end_at = time.perf_counter()
    return Spoken(started, speech_end_at)


def logged(log: Path, line: str) -> bool:
    return line in log.read_text(errors="replace")


async def test_after_an_stt_restart_the_waterfall_matches_what_the_client_measured(
    cluster: Cluster, cluster_log: Path, speech_clips: list[Clip]
) -> None:
    """stt restarts mid-session; its reopened stream counts its time from 0 again. The next
    turn's waterfall must still start at the end of that turn's speech."""
    clip = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    url = f"{cluster.ws_url}/ws/{cluster.token()}"
    async with aiohttp.ClientSession() as http, LiveSession(http, url) as session:
        await session.wait_for(lambda: "ready" in session.types(), 10.0)
        session_id = session.events[0]["session_id"]
        first = await speak(session, clip, silence_s=1.0)
        await session.silence_until(lambda: "turn_complete" in session.types(), 30.0)
        # Enough session before the restart that the old clock's error could not hide.
        elapsed = time.perf_counter() - first.started_at
        await session.keep_listening(max(1.0, SESSION_BEFORE_KILL_S - elapsed))

        await cluster.kill("stt")
        listening = asyncio.create_task(session.keep_listening(120.0))
        await session.wait_for(
            lambda: any(
                e.get("code") == "upstream_unavailable" and e.get("stage") == "stt"
                for e in session.events
            ),
            10.0,
        )
        await cluster.restart("stt")
        reopened = f"session {session_id}: stt stream reopened"
        deadline = time.perf_counter() + 15.0
        while not logged(cluster_log, reopened):
            assert time.perf_counter() < deadline, "the session did not reopen its stt stream"
            assert not listening.done(), session.types()
            await asyncio.sleep(0.2)
        reopened_at = time.perf_counter()
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)
        await session.keep_listening(0.5)
        # The precondition that lets the test fail: with the old clock, every stream time of
        # the new stream maps to this much too early.
        before_restart_s = reopened_at - first.started_at
        assert before_restart_s > 5 * WATERFALL_TOLERANCE_S

        completed_before = session.types().count("turn_complete")
        spoken = await speak(session, clip, silence_s=1.0)
        await session.silence_until(
            lambda: session.types().count("turn_complete") > completed_before, 30.0
        )
        await session.keep_listening(0.3)

    turn = session.first("turn_complete", after=spoken.speech_end_at)
    assert turn is not None and turn.data is not None, session.types()
    finals = [
        e["text"]
        for e in session.events
        if e["type"] == "transcript" and e["final"] and e["turn_id"] == turn.data["turn_id"]
    ]
    assert finals and "weather" in finals[-1].lower(), finals
    frames = session.audio_of(turn.data["turn_id"])
    assert frames, "the turn after the restart sent no audio"
    measured_s = frames[0].at - spoken.speech_end_at
    waterfall_s = turn.data["latency"]["first_audio_sent"] / 1000
    assert measured_s > 0
    assert abs(waterfall_s - measured_s) < WATERFALL_TOLERANCE_S, (
        f"waterfall says first audio {waterfall_s:.3f} s after the end of speech, the client "
        f"measured {measured_s:.3f} s ({before_restart_s:.1f} s of session before the restart)"
    )
    latency = turn.data["latency"]
    assert latency["audio_received"] == 0
    assert 0 < latency["stt_complete"] <= latency["first_audio_sent"]


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
