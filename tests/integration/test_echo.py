"""Echo cancelling with the real Whisper decoder: what stt would hear of the agent's own voice
coming back through the microphone, with and without the user speaking over it."""

from __future__ import annotations

import numpy as np
import pytest

from services.stt.settings import SttSettings
from services.stt.whisper import WhisperDecoder
from tests.conftest import Clip, clip_named
from tests.unit.test_echo import RATE, agent_voice, read, run_echo
from tools.wer import normalize_transcript, word_errors

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def decoder() -> WhisperDecoder:
    return WhisperDecoder(SttSettings.from_env({}))


def words(decoder: WhisperDecoder, samples: np.ndarray) -> str:
    return normalize_transcript(decoder.decode(samples / 32768).text)


def test_the_user_is_understood_over_the_echo(
    speech_clips: list[Clip], decoder: WhisperDecoder
) -> None:
    # "What joy there is in living", about as loud as the agent's voice.
    user_clip = clip_named(speech_clips, "024_")
    user = read(user_clip, RATE)
    run = run_echo(agent_voice(speech_clips), user, attenuation_db=6, delay_ms=80)
    span = slice(run.user_span.start, run.user_span.stop)
    cleaned = words(decoder, run.cleaned[span])
    raw = words(decoder, run.mic[span])
    errors, total = word_errors(user_clip.transcript_normalized, cleaned)
    raw_errors, _ = word_errors(user_clip.transcript_normalized, raw)
    print(f"cleaned: {cleaned!r} ({errors}/{total}); raw: {raw!r} ({raw_errors}/{total})")
    assert errors / total <= 0.25
    assert errors <= raw_errors


def test_the_echo_alone_leaves_no_words(speech_clips: list[Clip], decoder: WhisperDecoder) -> None:
    run = run_echo(agent_voice(speech_clips), None, attenuation_db=6, delay_ms=120)
    late = slice(3 * RATE, len(run.cleaned))  # once the canceller has converged
    raw = words(decoder, run.mic[late])
    cleaned = words(decoder, run.cleaned[late])
    print(f"raw: {raw!r}; cleaned: {cleaned!r}")
    assert len(raw.split()) >= 10  # the echo, uncleaned, is heard as words
    assert len(cleaned.split()) <= 2
