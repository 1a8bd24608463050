"""Mp3Decoder: MP3 bytes in pieces of any size, PCM16 mono out as soon as it is decodable."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from services.tts.mp3 import Mp3Decoder

pytestmark = pytest.mark.unit

RATE = 24000


def encode_tone(seconds: float, *, hz: float = 440.0, tagged: bool = False) -> bytes:
    """A tone as MP3 (48 kbit/s mono, as the Edge service sends), optionally with an ID3 tag."""
    t = np.arange(int(RATE * seconds)) / RATE
    samples = (0.3 * np.sin(2 * np.pi * hz * t) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    options = {} if tagged else {"id3v2_version": "0", "write_xing": "0"}
    with av.open(buffer, "w", format="mp3", options=options) as container:
        stream = container.add_stream("libmp3lame", rate=RATE, layout="mono")
        stream.bit_rate = 48000
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="s16", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return buffer.getvalue()


def decode(mp3: bytes, piece: int) -> tuple[list[bytes], Mp3Decoder]:
    decoder = Mp3Decoder(RATE)
    outputs = [decoder.push(mp3[i : i + piece]) for i in range(0, len(mp3), piece)]
    return [*outputs, decoder.flush()], decoder


def dominant_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(samples.size, 1 / RATE)[int(np.argmax(spectrum))])


def test_the_whole_tone_comes_out_at_the_right_pitch() -> None:
    outputs, decoder = decode(encode_tone(1.0), 4096)
    pcm = b"".join(outputs)
    # One second plus the codecs' priming and padding (under 100 ms), never less.
    assert RATE <= len(pcm) // 2 <= RATE * 1.1
    assert abs(dominant_hz(pcm) - 440) < 5
    assert decoder.bad_packets == 0


def test_audio_comes_out_while_the_bytes_are_still_arriving() -> None:
    mp3 = encode_tone(1.0)
    outputs, _ = decode(mp3, 1000)
    halfway = b"".join(outputs[: len(outputs) // 2])
    # Half of the bytes give about half of the audio: the parser holds back one frame only.
    assert len(halfway) // 2 > 0.4 * RATE


@pytest.mark.parametrize("piece", [1, 7, 333, 100_000])
def test_the_piece_size_does_not_change_the_audio(piece: int) -> None:
    mp3 = encode_tone(0.5)
    reference = b"".join(decode(mp3, 4096)[0])
    assert b"".join(decode(mp3, piece)[0]) == reference


def test_a_file_with_tags_still_decodes() -> None:
    pcm = b"".join(decode(encode_tone(0.5, tagged=True), 1024)[0])
    assert len(pcm) // 2 >= 0.5 * RATE
    assert abs(dominant_hz(pcm) - 440) < 5


def test_garbage_gives_no_audio_and_no_exception() -> None:
    decoder = Mp3Decoder(RATE)
    assert decoder.push(b"\x00garbage" * 100) + decoder.flush() == b""


def test_flush_without_input_is_empty() -> None:
    assert Mp3Decoder(RATE).flush() == b""
