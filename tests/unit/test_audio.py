"""PCM16 framing, conversion, loudness and resampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from voice.audio import (
    FrameBuffer,
    Resampler,
    duration_s,
    float_to_pcm16,
    frames,
    pcm16_to_float,
    rms_dbfs,
)

pytestmark = pytest.mark.unit


def pcm(values: list[int] | np.ndarray) -> bytes:
    return np.asarray(values, dtype="<i2").tobytes()


def samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


def sine(frequency: float, rate: int, seconds: float, amplitude: float = 0.5) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return float_to_pcm16(amplitude * np.sin(2 * np.pi * frequency * t))


def peak_frequency(data: bytes, rate: int) -> float:
    values = samples(data).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(values * np.hanning(values.size)))
    return float(np.fft.rfftfreq(values.size, 1 / rate)[int(np.argmax(spectrum))])


def test_pcm16_to_float_scales_to_unit_range() -> None:
    values = pcm16_to_float(pcm([-32768, -16384, 0, 16384, 32767]))
    assert values.dtype == np.float32
    assert values.tolist() == [-1.0, -0.5, 0.0, 0.5, 32767 / 32768]


def test_every_pcm16_value_survives_a_round_trip() -> None:
    data = pcm(np.arange(-32768, 32768))
    assert float_to_pcm16(pcm16_to_float(data)) == data


def test_float_round_trip_is_within_one_step() -> None:
    values = np.linspace(-1.0, 1.0, 1001, dtype=np.float32)
    back = pcm16_to_float(float_to_pcm16(values))
    assert np.max(np.abs(back - values)) <= 1 / 32768


def test_float_to_pcm16_clips_and_rounds() -> None:
    data = float_to_pcm16(np.array([2.0, 1.0, -1.0, -3.0, 0.4 / 32768, 0.6 / 32768]))
    assert samples(data).tolist() == [32767, 32767, -32768, -32768, 0, 1]


def test_float_to_pcm16_is_little_endian() -> None:
    assert float_to_pcm16(np.array([0.5])) == b"\x00\x40"


@pytest.mark.parametrize("size", [1, 3, 641])
def test_odd_byte_count_is_an_error(size: int) -> None:
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm16_to_float(b"\x00" * size)


def test_duration() -> None:
    assert duration_s(b"\x00" * 32000, 16000) == 1.0
    assert duration_s(b"", 16000) == 0.0


def test_frames_cut_audio_into_fixed_frames_with_a_short_tail() -> None:
    data = bytes(range(256)) * 6  # 1536 bytes, 768 samples
    cut = list(frames(data, 16000, 20))  # 320 samples = 640 bytes a frame
    assert [len(frame) for frame in cut] == [640, 640, 256]
    assert b"".join(cut) == data


def test_frames_of_nothing_and_a_tiny_frame_size() -> None:
    assert list(frames(b"", 16000, 20)) == []
    # Under one sample a frame: still whole samples, never an empty frame.
    assert list(frames(b"\x01\x02\x03\x04", 100, 1)) == [b"\x01\x02", b"\x03\x04"]


def test_frame_buffer_hands_out_whole_frames() -> None:
    buffer = FrameBuffer(8000, 10)  # 80 samples, 160 bytes
    assert buffer.frame_bytes == 160
    assert buffer.push(b"a" * 100) == []
    ready = buffer.push(b"b" * 300)
    assert ready == [b"a" * 100 + b"b" * 60, b"b" * 160]
    assert buffer.drain() == b"b" * 80
    assert buffer.drain() == b""
    assert buffer.push(b"c" * 160) == [b"c" * 160]


def test_frame_buffer_keeps_all_bytes_in_order() -> None:
    buffer = FrameBuffer(16000, 20)
    data = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    out: list[bytes] = []
    for start in range(0, len(data), 333):
        out += buffer.push(data[start : start + 333])
    assert all(len(frame) == 640 for frame in out)
    assert b"".join(out) + buffer.drain() == data


def test_resampler_with_equal_rates_is_a_no_op() -> None:
    data = sine(440, 16000, 0.1)
    resampler = Resampler(16000, 16000)
    assert resampler.process(data) is data
    assert resampler.process(b"", last=True) == b""


@pytest.mark.parametrize(("in_rate", "out_rate"), [(16000, 24000), (48000, 16000), (22050, 16000)])
def test_resampler_changes_length_by_the_rate_ratio(in_rate: int, out_rate: int) -> None:
    data = sine(440, in_rate, 1.0)
    resampler = Resampler(in_rate, out_rate)
    chunk = in_rate // 50 * 2  # 20 ms pieces, as they arrive in a stream
    out = b"".join(
        resampler.process(data[start : start + chunk]) for start in range(0, len(data), chunk)
    )
    out += resampler.process(b"", last=True)
    assert len(out) % 2 == 0
    assert len(out) / 2 == pytest.approx(out_rate, abs=out_rate * 0.01)


@pytest.mark.parametrize(("in_rate", "out_rate"), [(16000, 24000), (24000, 16000), (44100, 8000)])
def test_resampler_preserves_a_sines_frequency(in_rate: int, out_rate: int) -> None:
    out = Resampler(in_rate, out_rate).process(sine(440, in_rate, 1.0), last=True)
    assert peak_frequency(out, out_rate) == pytest.approx(440, abs=5)
    # And its loudness: a 0.5 amplitude sine is about -9 dBFS.
    assert rms_dbfs(out) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.3)


def test_rms_of_silence_and_nothing_is_minus_infinity() -> None:
    assert rms_dbfs(pcm([0] * 1000)) == float("-inf")
    assert rms_dbfs(b"") == float("-inf")


def test_rms_of_full_scale_and_quieter_signals() -> None:
    assert rms_dbfs(pcm([32767, -32768] * 500)) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs(sine(1000, 16000, 1.0, amplitude=1.0)) == pytest.approx(-3.01, abs=0.02)
    assert rms_dbfs(pcm([328, -328] * 500)) == pytest.approx(-40.0, abs=0.05)
