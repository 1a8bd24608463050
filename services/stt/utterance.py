"""One utterance's audio and text bookkeeping: the committed prefix, and local agreement.

Decodes never re-read the whole utterance. Text is *committed* with the audio it came from:

- at a pause the user then spoke on from: the decode made at the pause covers the audio up to
  the pause exactly, so its text is committed and later decodes start where it stopped;
- in a long stretch without pauses: once the audio after the committed point is longer than
  the rolling window, the segments of a partial that two successive decodes agreed on are
  committed, cut at the quietest point near their end.

So a decode reads at most about the rolling window of audio, whatever the utterance's length,
and every transcript is ``committed text + decode of the audio after it``.

Partial transcripts also carry a stable prefix by local agreement: the words two successive
decodes agree on (and never less than the committed text).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from services.stt.engine import MODEL_SAMPLE_RATE, Decoding

_PUNCTUATION = ".,!?;:\"'()-…"


def _word_key(word: str) -> str:
    return word.strip(_PUNCTUATION).lower()


def common_word_prefix(a: str, b: str) -> str:
    """The words two decodes agree on, from the start (local agreement); ``b``'s spelling."""
    agreed: list[str] = []
    for left, right in zip(a.split(), b.split(), strict=False):
        if _word_key(left) != _word_key(right):
            break
        agreed.append(right)
    return " ".join(agreed)


def join_text(first: str, second: str) -> str:
    return f"{first} {second}".strip() if first and second else first or second


@dataclass
class DecodeJob:
    """A decode of the utterance's audio ``[start, end)`` (stream samples) after ``base_text``."""

    start: int
    end: int
    base_text: str
    future: asyncio.Future[Decoding]
    cancel: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)

    def text(self) -> str:
        """The whole utterance's text so far; call once the future is done."""
        return join_text(self.base_text, self.future.result().text)

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000


class Utterance:
    """The audio of one utterance (from just before its speech started) and its committed text."""

    def __init__(self, utterance_id: str, origin: int) -> None:
        self.id = utterance_id
        # Stream sample index of the first sample held.
        self.origin = origin
        self._chunks: list[np.ndarray] = []
        self._probabilities: list[float] = []
        self._window = 0
        self._length = 0
        self.committed_text = ""
        self.committed_at = origin
        self._last_text = ""

    @property
    def end(self) -> int:
        return self.origin + self._length

    def append(self, window: np.ndarray, probability: float) -> None:
        self._chunks.append(window)
        self._probabilities.append(probability)
        self._window = len(window)
        self._length += len(window)

    def audio(self, start: int, end: int) -> np.ndarray:
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0][start - self.origin : end - self.origin]

    def tail_seconds(self) -> float:
        return (self.end - self.committed_at) / MODEL_SAMPLE_RATE

    def commit(self, job: DecodeJob, text: str, until: int) -> bool:
        """Commit ``text`` as the transcript of the audio up to ``until``, if ``job`` still
        starts at the committed point (commits only move forward, one after another)."""
        if job.start != self.committed_at or not job.start < until <= job.end:
            return False
        self.committed_text = text
        self.committed_at = until
        return True

    def agree(self, text: str, base_text: str) -> str:
        """The stable prefix of a new partial ``text``: what the previous one agreed with."""
        stable = common_word_prefix(self._last_text, text)
        self._last_text = text
        if len(stable.split()) < len(base_text.split()):
            stable = base_text
        return stable

    def commit_agreed_segments(self, job: DecodeJob, stable: str, rolling_window_s: float) -> bool:
        """In a long stretch of speech, commit the agreed segments of a partial (all but the
        last, which may still change), cut at the quietest window near their end."""
        decoding = job.future.result()
        if (job.end - job.start) / MODEL_SAMPLE_RATE <= rolling_window_s:
            return False
        if len(decoding.segments) < 2:
            return False
        done = decoding.segments[:-1]
        text = join_text(job.base_text, " ".join(s.text for s in done))
        if len(text.split()) > len(stable.split()):
            return False  # not agreed yet
        cut = self.quiet_point(job.start + round(done[-1].end_s * MODEL_SAMPLE_RATE))
        return self.commit(job, text, cut)

    def quiet_point(self, near: int, radius_s: float = 0.2) -> int:
        """The window boundary with the least speech probability within ``radius_s`` of
        ``near`` (Whisper's timestamps are approximate), in stream samples."""
        if not self._window:
            return near
        radius = round(radius_s * MODEL_SAMPLE_RATE) // self._window
        centre = (near - self.origin) // self._window
        low = max(0, centre - radius)
        high = min(len(self._probabilities) - 1, centre + radius)
        if high < low:
            return near
        best = min(range(low, high + 1), key=lambda i: (self._probabilities[i], abs(i - centre)))
        # The end of the quietest window: its silence goes with the committed text.
        return self.origin + (best + 1) * self._window
