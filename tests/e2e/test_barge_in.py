"""Barge-in with the real cluster: the user talks over the agent's answer.

The timing (how soon the agent's audio stops after the barge-in is decided) is measured by
``make bench-barge-in``; this test checks what must always hold, whatever the machine's speed.
"""

from __future__ import annotations

import aiohttp
import pytest

from tests.conftest import Clip, clip_named
from tests.e2e.conftest import RunningCluster
from tools.client import ClipAudio
from tools.live import LiveSession

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


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
    assert finals and "canoe" in finals[-1].lower()
    assert session.audio_of(answer.data["turn_id"])
