"""When the audio at an stt stream time reached the gateway: the session's arrival clock."""

from __future__ import annotations

import time
from collections import deque

ARRIVALS_KEPT = 3000


class ArrivalClock:
    """Maps the current stt stream's times to arrival times on the monotonic clock.

    stt counts stream time from the first audio of *its* stream, so the clock has one epoch
    per stt stream: ``restart`` (when a stream is opened, or reopened after stt restarted)
    makes the next sample sent stream time 0 and forgets the arrivals of the old stream, whose
    stream times mean something else.
    """

    def __init__(self, sample_rate: int) -> None:
        self.epoch = 0
        self._rate = sample_rate
        self._samples = 0
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=ARRIVALS_KEPT)

    def restart(self, sample_rate: int) -> None:
        self.epoch += 1
        self._rate = sample_rate
        self._samples = 0
        self._arrivals.clear()

    def record(self, samples: int, at: float) -> None:
        """``samples`` more samples were sent to the current stream at ``at``."""
        self._samples += samples
        self._arrivals.append((self._samples, at))

    def arrival_time(self, stream_time_s: float) -> float:
        """When the audio at ``stream_time_s`` (seconds since the stream's first audio) reached
        us: the arrival of the frame that holds that sample (now, if it has not arrived)."""
        target = int(stream_time_s * self._rate)
        for samples, arrived in self._arrivals:
            if samples >= target:
                return arrived
        return time.perf_counter()
