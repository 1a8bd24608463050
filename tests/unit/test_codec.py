"""The client codecs: Opus packets round-trip speech-like audio; bad frames are clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.transports.codecs import OpusIn, OpusOut, Pcm16In, Pcm16Out, audio_in, audio_out
from gateway.transports.messages import ProtocolError
from voice.opus import OpusDecoder, OpusEncoder, OpusError

pytestmark = pytest.mark.unit


def tone(rate: int, seconds: float, hz: float = 440.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 8000).astype("<i2").tobytes()


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("rate", [16000, 24000, 48000])
def test_opus_round_trip_keeps_length_and_pitch(rate: int) -> None:
    pcm = tone(rate, 1.0)
    encoder = OpusEncoder(rate)
    # Uneven pieces, as TTS chunks come: the encoder cuts its own 20 ms frames.
    packets = encoder.encode(pcm[: 3001 * 2]) + encoder.encode(pcm[3001 * 2 :]) + encoder.flush()
    assert 50 <= len(packets) <= 52
    assert sum(len(p) for p in packets) < 32000 / 8 * 1.25  # about 32 kbit/s, whatever the rate
    decoder = OpusDecoder()
    decoded = b"".join(decoder.decode(p) for p in packets)
    seconds = len(decoded) / 2 / decoder.sample_rate
    assert 1.0 <= seconds <= 1.05
    assert abs(dominant_hz(decoded, decoder.sample_rate) - 440.0) < 5.0


def test_opus_encoder_refuses_a_rate_opus_does_not_have() -> None:
    with pytest.raises(OpusError, match="22050"):
        OpusEncoder(22050)


@pytest.mark.parametrize("packet", [b"", b"\xff\xfe\xfd garbage that is not opus", b"\x00" * 5000])
def test_opus_decoder_refuses_what_is_not_a_packet(packet: bytes) -> None:
    with pytest.raises(OpusError):
        OpusDecoder().decode(packet)


def test_opus_decoder_goes_on_after_a_bad_packet() -> None:
    decoder = OpusDecoder()
    with pytest.raises(OpusError):
        decoder.decode(b"\xff\xfe\xfd garbage")
    encoder = OpusEncoder(16000)
    packets = encoder.encode(tone(16000, 0.1)) + encoder.flush()
    assert b"".join(decoder.decode(p) for p in packets)


def test_pcm16_in_checks_the_frame_size() -> None:
    codec = audio_in("pcm16", 16000)
    assert isinstance(codec, Pcm16In)
    assert codec.decode(b"\x00" * 640) == b"\x00" * 640
    for bad in (b"\x00" * 641, b"\x00" * 100, b"\x00" * 8000):
        with pytest.raises(ProtocolError) as error:
            codec.decode(bad)
        assert error.value.code == "invalid_audio"


def test_opus_in_decodes_packets_at_48k_and_refuses_garbage() -> None:
    codec = audio_in("opus", 16000)
    assert isinstance(codec, OpusIn) and codec.sample_rate == 48000
    encoder = OpusEncoder(16000)
    packet = encoder.encode(tone(16000, 0.02))[0]
    assert len(codec.decode(packet)) == 960 * 2
    with pytest.raises(ProtocolError) as error:
        codec.decode(b"not opus at all")
    assert error.value.code == "invalid_audio"


async def test_audio_out_passes_pcm_through_or_encodes_opus() -> None:
    plain = audio_out("pcm16", 24000)
    assert isinstance(plain, Pcm16Out)
    assert await plain.encode(b"\x01\x00" * 10) == [b"\x01\x00" * 10]
    assert await plain.flush() == []
    opus = audio_out("opus", 24000)
    assert isinstance(opus, OpusOut)
    packets = await opus.encode(tone(24000, 0.05)) + await opus.flush()
    decoder = OpusDecoder()
    assert len(b"".join(decoder.decode(p) for p in packets)) >= 0.05 * 48000 * 2
