"""The end-of-turn rules end to end: a complete question ends its turn at the pause."""

from __future__ import annotations

import pytest

from tests.conftest import Clip, clip_named
from tests.e2e.conftest import RunningCluster
from tools.client import ClipAudio, talk
from tools.wer import normalize_transcript

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def _ends(events: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for e in events if e["type"] == "end_of_turn"]


async def test_a_complete_question_ends_at_the_pause_with_its_reason(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036")  # "What's the weather like?"
    result = await talk(
        cluster.url(), ClipAudio.from_wav(clip.path), start={"end_of_turn": "punctuation"}
    )
    assert not result.errors, result.errors
    [end] = _ends(result.events)
    assert end["reason"] == "complete" and end["score"] == 1.0
    # One final transcript for the turn: stt's own, later one for the utterance is not repeated.
    finals = [e for e in result.events if e["type"] == "transcript" and e["final"]]
    assert len(finals) == 1
    assert normalize_transcript(str(finals[0]["text"])) == clip.transcript_normalized
    assert result.agent_text.strip() and result.latency_ms is not None
    assert "end_of_turn" in result.waterfall


async def test_the_silence_rule_ends_the_turn_after_the_end_of_turn_silence(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036")
    result = await talk(
        cluster.url(), ClipAudio.from_wav(clip.path), start={"end_of_turn": "silence"}
    )
    assert not result.errors, result.errors
    [end] = _ends(result.events)
    assert end["reason"] == "silence" and end["score"] is None
    assert result.agent_text.strip() and "end_of_turn" in result.waterfall
