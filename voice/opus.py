"""Opus packets <-> PCM16 mono, with the libopus that PyAV's wheels carry (no system library).

One WebSocket binary frame carries one raw Opus packet (no Ogg container), as WebCodecs'
``AudioEncoder`` produces them. Opus decodes any packet at 48 kHz whatever rate it was encoded
at, so decoded audio is always 48 kHz; the encoder takes PCM at any Opus rate and cuts it into
20 ms frames, padding the last one with silence when the audio ends.
"""

from __future__ import annotations

import av
import av.error
import numpy as np

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
DECODED_RATE = 48000
FRAME_MS = 20
# 120 ms at the highest bitrate fits in this; anything larger is not an Opus packet.
MAX_PACKET_BYTES = 4000


class OpusError(ValueError):
    """A packet that is not Opus, or audio the encoder cannot take."""


class OpusDecoder:
    """Decodes one packet at a time to PCM16 mono at 48 kHz."""

    sample_rate = DECODED_RATE

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.sample_rate = DECODED_RATE
        self._codec.layout = "mono"  # type: ignore[attr-defined]

    def decode(self, packet: bytes) -> bytes:
        if not packet or len(packet) > MAX_PACKET_BYTES:
            raise OpusError(f"an Opus packet is 1 to {MAX_PACKET_BYTES} bytes (got {len(packet)})")
        try:
            frames = self._codec.decode(av.Packet(packet))
        except av.error.FFmpegError as error:
            raise OpusError(f"not a valid Opus packet: {error}") from None
        pcm = [frame.to_ndarray().astype("<i2", copy=False).reshape(-1) for frame in frames]
        return b"".join(chunk.tobytes() for chunk in pcm)


class OpusEncoder:
    """Encodes a stream of PCM16 mono into 20 ms packets. ``flush`` ends the stream."""

    def __init__(self, sample_rate: int, bitrate: int = 32000) -> None:
        if sample_rate not in OPUS_RATES:
            rates = ", ".join(str(r) for r in OPUS_RATES)
            raise OpusError(f"Opus encodes at {rates} Hz, not {sample_rate}")
        codec = av.CodecContext.create("libopus", "w")
        codec.sample_rate = sample_rate
        codec.layout = "mono"  # type: ignore[attr-defined]
        codec.format = "s16"  # type: ignore[attr-defined]
        codec.bit_rate = bitrate
        codec.options = {"application": "voip", "frame_duration": str(FRAME_MS)}
        codec.open()
        self._codec = codec
        self.sample_rate = sample_rate
        self._frame_bytes = sample_rate * FRAME_MS // 1000 * 2
        self._pending = b""
        self._samples = 0

    def encode(self, pcm: bytes) -> list[bytes]:
        data = self._pending + pcm
        whole = len(data) - len(data) % self._frame_bytes
        self._pending = data[whole:]
        packets: list[bytes] = []
        for start in range(0, whole, self._frame_bytes):
            packets.extend(self._encode_frame(data[start : start + self._frame_bytes]))
        return packets

    def flush(self) -> list[bytes]:
        """The rest of the audio (padded to a whole frame) and what the encoder still holds."""
        packets: list[bytes] = []
        if self._pending:
            packets.extend(self._encode_frame(self._pending.ljust(self._frame_bytes, b"\x00")))
            self._pending = b""
        packets.extend(bytes(packet) for packet in self._codec.encode(None))
        return packets

    def _encode_frame(self, pcm: bytes) -> list[bytes]:
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self._samples
        self._samples += samples.shape[1]
        return [bytes(packet) for packet in self._codec.encode(frame)]
