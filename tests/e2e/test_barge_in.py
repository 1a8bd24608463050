"""Barge-in with the real cluster: the user talks over the agent's answer.

The timing (how soon the agent's audio stops after the barge-in is decided) is measured by
``make bench-barge-in``; these tests check what must always hold, whatever the machine's speed:
words over the agent duck it and then interrupt it, a backchannel ducks it and it resumes, and
a user who goes quiet is checked in on (the cluster here checks in after a short silence and
then ends the session).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from launcher.cluster import Cluster, ClusterConfig
from tests.conftest import Clip, clip_named
from tests.e2e.conftest import RunningCluster
from tools.client import ClipAudio
from tools.live import LiveSession

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

CHECK_IN_ENV = {"GATEWAY_CHECK_IN_MS": "2500", "GATEWAY_CHECK_IN_THEN": "end"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningCluster]:
    log_path = tmp_path_factory.mktemp("cluster") / "cluster.log"
    with log_path.open("w") as log:
        env = {"OTEL_SDK_DISABLED": "true", **CHECK_IN_ENV}
        async with Cluster(ClusterConfig.on_free_ports(output=log, env=env)) as running:
            yield RunningCluster(running, log_path)


async def test_talking_over_the_agent_stops_its_audio_and_gets_an_answer(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    question = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    interruption = ClipAudio.from_wav(clip_named(speech_clips, "006_").path)
    async with aiohttp.ClientSession() as http, LiveSession(http, cluster.url()) as session:
        await session.say(question, silence_s=0.0)
        await session.silence_until(lambda: session.first("audio_start") is not None, 30.0)
        first_turn = session.first("audio_start")
        assert first_turn is not None and first_turn.data is not None
        turn_id = first_turn.data["turn_id"]
        await session.say(interruption, silence_s=0.0)

        def answered_again() -> bool:
            return any(
                e["type"] == "turn_complete" and e["turn_id"] != turn_id for e in session.events
            )

        await session.silence_until(answered_again, 30.0)

    voice_sent = session.sent_voice_at[-1]
    heard = session.first("speech_started", after=voice_sent)
    interrupted = session.first("interrupted", turn_id=turn_id)
    assert heard is not None and interrupted is not None, session.types()
    assert heard.at < interrupted.at
    # The agent was ducked at the speech's onset, before it was decided to be an interruption.
    ducked = session.first("ducked", turn_id=turn_id)
    assert ducked is not None and ducked.data is not None, session.types()
    assert heard.at <= ducked.at < interrupted.at
    assert 0 <= ducked.data["gain"] <= 1
    assert session.first("resumed", turn_id=turn_id) is None
    frames = session.audio_of(turn_id)
    assert frames, "the first answer sent no audio before the interruption"
    assert all(frame.at < interrupted.at for frame in frames), "audio after `interrupted`"
    # The answer may have been all sent (the client still playing it) before the barge-in; if
    # so its turn_complete came before `interrupted`, never after.
    finished = session.first("turn_complete", turn_id=turn_id)
    assert finished is None or finished.at < interrupted.at

    # The words spoken over the agent became the next turn, and it was answered.
    answer = next(
        r
        for r in session.received
        if r.data is not None and r.type == "turn_complete" and r.data["turn_id"] != turn_id
    )
    assert answer.data is not None and answer.at > interrupted.at
    finals = [
        e["text"]
        for e in session.events
        if e["type"] == "transcript" and e["final"] and e["turn_id"] == answer.data["turn_id"]
    ]
    assert finals and "canoe" in finals[-1].lower(), [
        e for e in session.events if e["type"] not in ("agent_text",)
    ]
    assert session.audio_of(answer.data["turn_id"])


async def test_a_backchannel_over_the_agent_ducks_it_and_the_answer_goes_on(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    question = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    backchannel = ClipAudio.from_wav(clip_named(speech_clips, "007_").path)  # "yes"
    async with aiohttp.ClientSession() as http, LiveSession(http, cluster.url()) as session:
        await session.say(question, silence_s=0.0)
        await session.silence_until(lambda: session.first("audio_start") is not None, 30.0)
        first_turn = session.first("audio_start")
        assert first_turn is not None and first_turn.data is not None
        turn_id = first_turn.data["turn_id"]
        await session.say(backchannel, silence_s=0.0)

        def completed() -> bool:
            return session.first("turn_complete", turn_id=turn_id) is not None

        await session.silence_until(completed, 60.0)

    ducked = session.first("ducked", turn_id=turn_id)
    resumed = session.first("resumed", turn_id=turn_id)
    complete = session.first("turn_complete", turn_id=turn_id)
    assert ducked is not None and resumed is not None and complete is not None, session.types()
    assert ducked.at < resumed.at < complete.at
    assert session.first("interrupted") is None, session.types()
    # The answer went on after the resume: more of its audio came, and "yes" was no turn.
    assert any(frame.at > resumed.at for frame in session.audio_of(turn_id))
    turns = {e["turn_id"] for e in session.events if e["type"] == "audio_start"}
    assert turns == {turn_id}, session.types()


async def test_a_quiet_user_is_checked_in_on_and_then_the_session_ends(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    question = ClipAudio.from_wav(clip_named(speech_clips, "003_").path)
    async with aiohttp.ClientSession() as http, LiveSession(http, cluster.url()) as session:
        await session.say(question, silence_s=0.0)
        await session.silence_until(lambda: session.first("turn_complete") is not None, 60.0)
        await session.silence_until(lambda: session.first("check_in") is not None, 30.0)
        # Quiet on (no more audio: the server closes the socket right after `call_ended`).
        await session.wait_for(lambda: session.ws.closed, 30.0)

    answered = session.first("turn_complete")
    check_in = session.first("check_in")
    ended = session.first("call_ended")
    assert answered is not None and check_in is not None and ended is not None
    assert check_in.data is not None and ended.data is not None
    assert answered.at < check_in.at < ended.at
    # The check-in was spoken (its own audio), and the session closed for no response.
    assert session.audio_of(check_in.data["turn_id"]), session.types()
    assert session.first("turn_complete", turn_id=check_in.data["turn_id"]) is not None
    assert ended.data["reason"] == "no_response"
    assert session.close_code == 1000
