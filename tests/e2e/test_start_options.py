"""`start.language` and `start.voice` with the real cluster (Whisper tiny.en, the Piper voice):
a value a stage cannot serve gets a clear `error` before `ready` and the session goes on with
the stage's default (and the rest of the start); a value it serves is used."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.conftest import Clip, clip_named
from tests.e2e.conftest import RunningCluster
from tools.client import ClipAudio, talk
from tools.live import LiveSession
from tools.wer import normalize_transcript

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def errors(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == "error"]


async def started(session: LiveSession, start: dict[str, Any]) -> list[dict[str, Any]]:
    """Send a start and wait for its `ready`; returns the events in between (its errors)."""
    before = len(session.events)
    await session.ws.send_str(json.dumps({"type": "start", **start}))
    await session.wait_for(lambda: session.types().count("ready") == 2, 10.0)
    answer = session.events[before:]
    assert answer[-1]["type"] == "ready", answer
    return answer[:-1]


async def test_a_language_stt_cannot_transcribe_gets_a_clear_error_and_the_session_goes_on(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")
    async with (
        aiohttp.ClientSession() as http,
        LiveSession(http, cluster.url()) as session,
        LiveSession(http, cluster.url()) as bystander,
    ):
        await session.wait_for(lambda: "ready" in session.types(), 10.0)
        before_ready = await started(session, {"language": "fr"})
        assert [e["type"] for e in before_ready] == ["error"]
        error = before_ready[0]
        assert error["code"] == "unsupported_language" and "turn_id" not in error
        message = error["message"]
        assert "'fr'" in message and "tiny.en" in message and "English only" in message
        assert "default language" in message

        await session.say(ClipAudio.from_wav(clip.path), silence_s=1.0)
        await session.silence_until(lambda: "turn_complete" in session.types(), 30.0)
        assert not bystander.ws.closed and not errors(bystander.events)

    assert len(errors(session.events)) == 1
    turn = next(e for e in session.events if e["type"] == "turn_complete")
    finals = [
        e["text"]
        for e in session.events
        if e["type"] == "transcript" and e["final"] and e["turn_id"] == turn["turn_id"]
    ]
    assert finals and normalize_transcript(finals[-1]) == clip.transcript_normalized
    assert session.audio_of(turn["turn_id"]), "the answer had no audio"


async def test_a_voice_no_engine_speaks_gets_a_clear_error_and_the_rest_of_the_start_applies(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    """talk() streams right after its start, without waiting for `ready`, and in Opus: the
    codec of the start still applies, so nothing the client sent is lost."""
    clip = clip_named(speech_clips, "036_")
    result = await talk(
        cluster.url(),
        ClipAudio.from_wav(clip.path),
        start={"voice": "en-GB-SoniaNeural", "codec": "opus"},
    )
    assert [e["code"] for e in result.errors] == ["unsupported_voice"], result.errors
    message = result.errors[0]["message"]
    assert "'en-GB-SoniaNeural'" in message and "piper speaks one voice, joe" in message
    ready = [e for e in result.events if e["type"] == "ready"]
    assert ready[-1]["codec"] == "opus"
    assert normalize_transcript(result.transcript) == clip.transcript_normalized
    assert result.waterfall and result.audio


async def test_both_refused_get_an_error_each(cluster: RunningCluster) -> None:
    async with aiohttp.ClientSession() as http, LiveSession(http, cluster.url()) as session:
        await session.wait_for(lambda: "ready" in session.types(), 10.0)
        before_ready = await started(session, {"language": "de-DE", "voice": "nobody"})
    codes = sorted(e["code"] for e in errors(before_ready))
    assert codes == ["unsupported_language", "unsupported_voice"]


async def test_a_language_and_voice_the_stages_serve_are_taken(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")
    result = await talk(
        cluster.url(), ClipAudio.from_wav(clip.path), start={"language": "en-US", "voice": "joe"}
    )
    assert not result.errors, result.errors
    assert normalize_transcript(result.transcript) == clip.transcript_normalized
    assert result.waterfall and result.audio
    output = cluster.output()
    assert "language en," in output and "voice joe)" in output  # the stages' stream logs
