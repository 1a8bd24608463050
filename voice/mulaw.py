"""G.711 mu-law <-> PCM16 mono, with the codec FFmpeg carries (PyAV's ``pcm_mulaw``).

The standard library's ``audioop`` is gone in Python 3.13; PyAV is already how the gateway
speaks Opus (voice/opus.py), so its maintained G.711 implementation is used here too. Mu-law
is one byte per sample and stateless: any number of bytes decodes on its own, and any number
of samples encodes on its own.
"""

from __future__ import annotations

import av
import numpy as np

MULAW_RATE = 8000


class MulawDecoder:
    def __init__(self, sample_rate: int = MULAW_RATE) -> None:
        self._codec = av.CodecContext.create("pcm_mulaw", "r")
        self._codec.sample_rate = sample_rate
        self._codec.layout = "mono"  # type: ignore[attr-defined]

    def decode(self, mulaw: bytes) -> bytes:
        """PCM16 little-endian, one sample per byte of ``mulaw``."""
        if not mulaw:
            return b""
        frames = self._codec.decode(av.Packet(mulaw))
        return b"".join(frame.to_ndarray().astype("<i2", copy=False).tobytes() for frame in frames)


class MulawEncoder:
    def __init__(self, sample_rate: int = MULAW_RATE) -> None:
        codec = av.CodecContext.create("pcm_mulaw", "w")
        codec.sample_rate = sample_rate
        codec.layout = "mono"  # type: ignore[attr-defined]
        codec.format = "s16"  # type: ignore[attr-defined]
        codec.open()
        self._codec = codec
        self._rate = sample_rate
        self._samples = 0

    def encode(self, pcm: bytes) -> bytes:
        """One byte per PCM16 sample (an odd trailing byte is a caller's bug: ValueError)."""
        if len(pcm) % 2:
            raise ValueError(f"PCM16 has an even number of bytes (got {len(pcm)})")
        if not pcm:
            return b""
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._samples
        self._samples += samples.shape[1]
        return b"".join(bytes(packet) for packet in self._codec.encode(frame))
