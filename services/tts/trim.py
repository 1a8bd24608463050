"""The silence a voice starts with, cut from the front of a reply.

Speech engines begin an utterance with some silence (Piper about 20-60 ms, more at some rates).
At the start of a reply that silence is only delay: the listener hears nothing until the voice
starts. :class:`LeadingSilenceTrim` drops it from a reply's first audio, keeping a short
lead-in (``KEEP_S``) so the first sound is not clipped. Later chunks keep theirs: between
sentences it is the pause a speaker makes.
"""

from __future__ import annotations

import numpy as np

# A sample at or above this level (about -50 dBFS) is sound; below it, silence.
SOUND_LEVEL = 100
# What is kept before the first sound.
KEEP_S = 0.01
# At most this much is ever cut: a reply that really starts with a long silence keeps the rest.
MAX_CUT_S = 0.3


class LeadingSilenceTrim:
    """Feed PCM16 mono pieces in order; get them back without the leading silence."""

    def __init__(self, sample_rate: int) -> None:
        self._rate = sample_rate
        self._keep = int(sample_rate * KEEP_S) * 2
        self._max_cut = int(sample_rate * MAX_CUT_S) * 2
        self._pending = b""
        self.done = False
        self.cut_bytes = 0

    def push(self, pcm: bytes) -> bytes:
        if self.done:
            return pcm
        data = self._pending + pcm
        usable = len(data) - len(data) % 2
        samples = np.frombuffer(data[:usable], dtype="<i2")
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= SOUND_LEVEL)
        if loud.size:
            start = max(0, int(loud[0]) * 2 - self._keep)
        elif usable - self._keep > self._max_cut - self.cut_bytes:
            start = self._max_cut - self.cut_bytes  # silence too long to be a voice's lead-in
        else:
            # All silence so far: hold the lead-in, drop the rest.
            start = max(0, usable - self._keep)
            self.cut_bytes += start
            self._pending = data[start:]
            return b""
        start = min(start, self._max_cut - self.cut_bytes)
        self.cut_bytes += start
        self.done = True
        self._pending = b""
        return data[start:]

    @property
    def cut_ms(self) -> float:
        return round(self.cut_bytes / 2 / self._rate * 1000, 1)

    def flush(self) -> bytes:
        """What is held when the audio ends (a reply of pure silence keeps its lead-in)."""
        held, self._pending = self._pending, b""
        self.done = True
        return held
