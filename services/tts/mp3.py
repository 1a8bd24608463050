"""Incremental MP3 decoding with PyAV: bytes in as they arrive, PCM16 mono out as it is ready.

The parser holds back at most one MP3 frame (24 ms at 24 kHz) until it sees where the next one
starts; ``flush`` hands out the rest. Decoding is cheap (well under 1% of real time), so it runs
inline on the event loop. A packet the decoder refuses (a stray tag, a damaged frame) is
skipped and counted, not fatal.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import av
import numpy as np
from av.audio.frame import AudioFrame

log = logging.getLogger(__name__)


class Mp3Decoder:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._codec = av.CodecContext.create("mp3", "r")
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
        self.bad_packets = 0

    def push(self, data: bytes) -> bytes:
        """Add MP3 bytes; returns the PCM16 mono audio they completed (maybe empty)."""
        return self._decode(self._codec.parse(data))

    def flush(self) -> bytes:
        """The stream has ended: decode what the parser and the decoder still hold."""
        pcm = self._decode(self._codec.parse(None))
        with contextlib.suppress(av.error.EOFError):
            pcm += self._convert(list(self._codec.decode(None)))
        return pcm + b"".join(_pcm(frame) for frame in self._resampler.resample(None))

    def _decode(self, packets: list[Any]) -> bytes:
        frames: list[AudioFrame] = []
        for packet in packets:
            try:
                frames.extend(self._codec.decode(packet))
            except av.error.InvalidDataError:
                self.bad_packets += 1
                log.debug("skipped an undecodable MP3 packet")
        return self._convert(frames)

    def _convert(self, frames: list[AudioFrame]) -> bytes:
        return b"".join(_pcm(out) for frame in frames for out in self._resampler.resample(frame))


def _pcm(frame: AudioFrame) -> bytes:
    samples: np.ndarray = frame.to_ndarray()
    return samples.astype("<i2").tobytes()
