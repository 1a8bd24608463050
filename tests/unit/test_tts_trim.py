"""Cutting the silence a voice starts a reply with."""

from __future__ import annotations

import numpy as np
import pytest

from services.tts.trim import LeadingSilenceTrim

pytestmark = pytest.mark.unit

RATE = 24000


def pcm(silence_s: float, tone_s: float) -> bytes:
    silence = np.zeros(int(RATE * silence_s), dtype="<i2")
    tone = (3000 * np.sin(np.arange(int(RATE * tone_s)) * 0.2) + 1).astype("<i2")
    tone[0] = 2000  # the sound starts on the first sample of the tone
    return np.concatenate([silence, tone]).tobytes()


def trimmed(audio: bytes, piece: int) -> tuple[bytes, LeadingSilenceTrim]:
    trim = LeadingSilenceTrim(RATE)
    out = b"".join(trim.push(audio[i : i + piece]) for i in range(0, len(audio), piece))
    return out + trim.flush(), trim


@pytest.mark.parametrize("piece", [480, 4800, 999, 1 << 20])
def test_the_lead_in_is_cut_to_ten_ms_in_any_piece_sizes(piece: int) -> None:
    audio = pcm(0.08, 0.2)
    out, trim = trimmed(audio, piece)
    assert len(out) == len(audio) - int(RATE * 0.07) * 2
    assert out == audio[-len(out) :]  # nothing but the front is changed
    assert trim.cut_bytes == int(RATE * 0.07) * 2


def test_audio_that_starts_with_sound_is_untouched() -> None:
    audio = pcm(0.0, 0.1)
    assert trimmed(audio, 480)[0] == audio


def test_no_more_than_the_maximum_is_cut() -> None:
    audio = pcm(1.0, 0.1)
    out, trim = trimmed(audio, 960)
    assert trim.cut_bytes == int(RATE * 0.3) * 2
    assert out == audio[trim.cut_bytes :]


def test_once_the_voice_has_started_later_silence_is_kept() -> None:
    trim = LeadingSilenceTrim(RATE)
    first = trim.push(pcm(0.05, 0.05))
    later = trim.push(bytes(4800))
    assert trim.done and later == bytes(4800) and len(first) > 0
