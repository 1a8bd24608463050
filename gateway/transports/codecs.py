"""The client's audio codec, both ways: PCM16 (the default) or Opus (declared in ``start``).

The stages always work in PCM16; the session decodes what the client sends and each agent turn
encodes what it sends. Opus is about a tenth of PCM16's bandwidth for speech (32 kbit/s against
256 kbit/s in and 384 kbit/s out at the default rates).
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from gateway.transports.messages import ProtocolError
from voice.opus import OpusDecoder, OpusEncoder, OpusError

MIN_FRAME_MS, MAX_PCM_FRAME_MS, MAX_OPUS_FRAME_MS = 10, 200, 120


class AudioIn(Protocol):
    sample_rate: int

    def decode(self, frame: bytes) -> bytes:
        """PCM16 at ``sample_rate``; ProtocolError(invalid_audio) for a frame that is not audio."""
        ...


class AudioOut(Protocol):
    async def encode(self, pcm: bytes) -> list[bytes]:
        """The binary frames to send for this PCM16 (maybe none yet)."""
        ...

    async def flush(self) -> list[bytes]:
        """The frames still held back, at the end of a turn's audio."""
        ...


class Pcm16In:
    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate

    def decode(self, frame: bytes) -> bytes:
        frame_ms = len(frame) * 1000 / (2 * self.sample_rate)
        if len(frame) % 2 or not MIN_FRAME_MS <= frame_ms <= MAX_PCM_FRAME_MS:
            raise ProtocolError(
                "invalid_audio",
                f"binary frames must be PCM16 mono of {MIN_FRAME_MS} to {MAX_PCM_FRAME_MS} ms "
                f"at {self.sample_rate} Hz (got {len(frame)} bytes)",
            )
        return frame


class OpusIn:
    def __init__(self) -> None:
        self._decoder = OpusDecoder()
        self.sample_rate = self._decoder.sample_rate

    def decode(self, frame: bytes) -> bytes:
        try:
            pcm = self._decoder.decode(frame)
        except OpusError as error:
            message = f"binary frames must be Opus packets: {error}"
            raise ProtocolError("invalid_audio", message) from None
        frame_ms = len(pcm) * 1000 / (2 * self.sample_rate)
        if not MIN_FRAME_MS <= frame_ms <= MAX_OPUS_FRAME_MS:
            raise ProtocolError(
                "invalid_audio",
                f"Opus packets must hold {MIN_FRAME_MS} to {MAX_OPUS_FRAME_MS} ms "
                f"(got {frame_ms:.1f} ms)",
            )
        return pcm


class Pcm16Out:
    async def encode(self, pcm: bytes) -> list[bytes]:
        return [pcm]

    async def flush(self) -> list[bytes]:
        return []


class OpusOut:
    """Encodes off the event loop: a second of speech is ~10 ms of CPU."""

    def __init__(self, sample_rate: int) -> None:
        self._encoder = OpusEncoder(sample_rate)

    async def encode(self, pcm: bytes) -> list[bytes]:
        return await asyncio.to_thread(self._encoder.encode, pcm)

    async def flush(self) -> list[bytes]:
        return await asyncio.to_thread(self._encoder.flush)


def audio_in(codec: str, sample_rate: int) -> AudioIn:
    return OpusIn() if codec == "opus" else Pcm16In(sample_rate)


def audio_out(codec: str, sample_rate: int) -> AudioOut:
    return OpusOut(sample_rate) if codec == "opus" else Pcm16Out()
