"""The one definition of end of speech and of first audible audio (tools/acoustics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import Clip, clip_named
from tools.acoustics import PlaybackClock, speech_bounds, speech_end_s
from tools.client import ClipAudio

pytestmark = pytest.mark.unit
RATE = 16000


def pcm(*parts: tuple[float, float], rate: int = RATE, seed: int = 1) -> bytes:
    """Concatenated segments of (seconds, dBFS) noise: a stand-in for sound of a given level."""
    rng = np.random.default_rng(seed)
    chunks = []
    for seconds, dbfs in parts:
        amplitude = 10 ** (dbfs / 20) * np.sqrt(2)
        chunks.append(rng.uniform(-1, 1, int(seconds * rate)) * amplitude / np.sqrt(2 / 3))
    samples = np.clip(np.concatenate(chunks), -1, 1)
    return bytes((samples * 32767).astype("<i2").tobytes())


def test_a_loud_stretch_between_quiet_ones_is_found_to_the_frame() -> None:
    bounds = speech_bounds(pcm((0.5, -70), (1.2, -20), (0.8, -70)), RATE)
    assert bounds is not None
    assert bounds.start_s == pytest.approx(0.5, abs=0.011)
    assert bounds.end_s == pytest.approx(1.7, abs=0.011)


def test_clicks_shorter_than_three_frames_are_not_speech() -> None:
    audio = pcm((0.5, -70), (1.0, -20), (0.3, -70), (0.02, -10), (0.5, -70))
    assert speech_end_s(audio, RATE) == pytest.approx(1.5, abs=0.011)


def test_sound_40_db_under_the_peak_does_not_count() -> None:
    # A tail at -65 dBFS after speech at -20: above the floor + 8 dB but under peak - 40 dB.
    audio = pcm((0.3, -90), (1.0, -20), (1.0, -65), (0.3, -90))
    assert speech_end_s(audio, RATE) == pytest.approx(1.3, abs=0.011)


def test_silence_has_no_speech() -> None:
    assert speech_bounds(b"\x00\x00" * RATE, RATE) is None
    assert speech_bounds(b"", RATE) is None


def test_trailing_hiss_cannot_push_the_end_past_silero_plus_100_ms(
    speech_clips: list[Clip],
) -> None:
    clip = ClipAudio.from_wav(clip_named(speech_clips, "036").path)
    clean = speech_bounds(clip.pcm, clip.sample_rate)
    assert clean is not None and clean.silero_end_s is not None
    hiss = pcm((1.5, -35), rate=clip.sample_rate, seed=7)
    noisy = speech_bounds(clip.pcm + hiss, clip.sample_rate)
    assert noisy is not None and noisy.silero_end_s is not None
    # The hiss is loud enough to be "voiced" by level alone...
    assert noisy.acoustic_end_s > len(clip.pcm) / 2 / clip.sample_rate + 1.0
    # ...but Silero does not call it speech, so the end stays where the words end.
    assert noisy.end_s <= noisy.silero_end_s + 0.1 + 1e-9
    assert noisy.end_s == pytest.approx(clean.end_s, abs=0.15)


def test_the_acoustic_end_comes_before_silero_on_real_speech(speech_clips: list[Clip]) -> None:
    # Silero's probability trails the last sound: the old origin was late on most clips.
    earlier = 0
    checked = 0
    for item in speech_clips:
        if item.kind != "speech":
            continue
        audio = ClipAudio.from_wav(item.path)
        bounds = speech_bounds(audio.pcm, audio.sample_rate)
        assert bounds is not None, item.path.name
        assert bounds.start_s < bounds.end_s
        checked += 1
        earlier += bounds.silero_end_s is not None and bounds.end_s < bounds.silero_end_s
    assert checked >= 10 and earlier >= checked // 2


def test_playback_first_audible_counts_the_silence_the_answer_starts_with() -> None:
    clock = PlaybackClock(RATE)
    silent = pcm((0.2, -90))
    loud = pcm((0.2, -20))
    clock.feed(silent[: len(silent) // 2], 10.0)  # 100 ms of silence arrives at 10.0
    clock.feed(silent[len(silent) // 2 :] + loud, 10.01)  # the rest soon after
    assert clock.first_frame_at == 10.0
    # Played back to back from 10.0: the loud part starts 200 ms in.
    assert clock.first_audible_at == pytest.approx(10.2, abs=0.011)


def test_playback_waits_for_late_chunks() -> None:
    clock = PlaybackClock(RATE)
    clock.feed(pcm((0.1, -90)), 5.0)  # plays 5.0-5.1
    clock.feed(pcm((0.1, -20)), 5.5)  # arrives after a gap: plays from 5.5
    assert clock.first_audible_at == pytest.approx(5.5, abs=0.011)


def test_playback_that_is_never_loud_is_never_audible() -> None:
    clock = PlaybackClock(24000)
    for index in range(10):
        clock.feed(pcm((0.02, -60), rate=24000, seed=index), index * 0.02)
    assert clock.first_frame_at == 0.0
    assert clock.first_audible_at is None
