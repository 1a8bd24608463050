"""The real Whisper decoder (tiny.en) and Silero VAD on the real speech corpus.

WER is scored through ``WhisperDecoder.decode``, the call every stt decode goes through.
"""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from services.stt.__main__ import stream_config
from services.stt.servicer import SpeechToTextServicer
from services.stt.vad import SileroVoiceActivityDetector
from services.stt.whisper import WhisperDecoder
from tests.conftest import ROOT, Clip, clip_named
from tests.integration.conftest import serving
from voice.settings import SttSettings
from voice.v1 import audio_pb2, stt_pb2, stt_pb2_grpc
from voice.wer import normalize_transcript, word_errors

pytestmark = pytest.mark.model

MAX_WER = 0.06
RATE = 16000


def read(clip: Clip) -> np.ndarray:
    with wave.open(str(clip.path)) as handle:
        assert handle.getframerate() == RATE and handle.getnchannels() == 1
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
    return pcm.astype(np.float32) / 32768


@pytest.fixture(scope="module")
def settings() -> SttSettings:
    return SttSettings.from_env({})


@pytest.fixture(scope="module")
def decoder(settings: SttSettings) -> WhisperDecoder:
    return WhisperDecoder(settings)


@pytest.fixture(scope="module")
def servicer(decoder: WhisperDecoder, settings: SttSettings) -> Iterator[SpeechToTextServicer]:
    servicer = SpeechToTextServicer(decoder, SileroVoiceActivityDetector, stream_config(settings))
    yield servicer
    servicer.shutdown()


def test_tiny_en_word_error_rate_on_the_speech_clips(
    decoder: WhisperDecoder, speech_clips: list[Clip]
) -> None:
    errors = length = 0
    wrong = []
    for clip in speech_clips:
        if clip.kind != "speech":
            continue
        text = decoder.decode(read(clip)).text
        e, n = word_errors(clip.transcript_normalized, text)
        errors, length = errors + e, length + n
        if e:
            wrong.append(f"{clip.path.name}: {normalize_transcript(text)!r}")
    assert length > 100
    assert errors / length <= MAX_WER, f"WER {errors / length:.3f}; " + "; ".join(wrong)


@pytest.mark.parametrize("prefix", ["019_", "037_"])
def test_no_text_from_silence_or_noise_decoded_whole(
    decoder: WhisperDecoder, speech_clips: list[Clip], prefix: str
) -> None:
    """Whisper says "you" or "I'm gonna be right back." here without the no-speech guard."""
    assert decoder.decode(read(clip_named(speech_clips, prefix))).text == ""


async def _stream(
    servicer: SpeechToTextServicer, audio: np.ndarray
) -> list[stt_pb2.TranscribeResponse]:
    pcm = (audio * 32767).astype("<i2").tobytes() + b"\x00\x00" * RATE

    async def requests() -> AsyncIterator[stt_pb2.TranscribeRequest]:
        yield stt_pb2.TranscribeRequest(config=stt_pb2.TranscribeConfig(sample_rate=RATE))
        step = RATE // 50 * 2
        for start in range(0, len(pcm), step):
            chunk = audio_pb2.AudioChunk(pcm=pcm[start : start + step], sample_rate=RATE)
            yield stt_pb2.TranscribeRequest(audio=chunk)

    def register(server: grpc.aio.Server) -> None:
        stt_pb2_grpc.add_SpeechToTextServiceServicer_to_server(servicer, server)

    async with serving(register) as channel:
        stub = stt_pb2_grpc.SpeechToTextServiceStub(channel)
        return [response async for response in stub.Transcribe(requests())]


@pytest.mark.parametrize("prefix", ["019_", "037_"])
async def test_no_text_from_silence_or_noise_streamed_through_the_service(
    servicer: SpeechToTextServicer, speech_clips: list[Clip], prefix: str
) -> None:
    responses = await _stream(servicer, read(clip_named(speech_clips, prefix)))
    texts = [r.transcript.text for r in responses if r.HasField("transcript")]
    assert not any(texts), texts


async def test_a_question_streamed_through_the_service_is_transcribed_whole(
    servicer: SpeechToTextServicer, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")
    responses = await _stream(servicer, read(clip))
    transcripts = [r.transcript for r in responses if r.HasField("transcript")]
    finals = [t for t in transcripts if t.final]
    assert len(finals) == 1
    assert normalize_transcript(finals[0].text) == clip.transcript_normalized
    at_pause = [t for t in transcripts if t.at_pause]
    # The last pause's transcript is the final one's text (what early thinking relies on).
    if at_pause:
        assert at_pause[-1].text == finals[0].text


def test_an_unavailable_model_fails_at_start_listing_what_can_be_had() -> None:
    env = {**os.environ, "STT_MODEL": "large-v9", "OTEL_SDK_DISABLED": "true"}
    result = subprocess.run(
        [sys.executable, "-m", "services.stt"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "large-v9" in result.stderr
    assert "tiny.en" in result.stderr and "base" in result.stderr


def test_base_is_assembled_on_first_use_and_transcribes(
    speech_clips: list[Clip], tmp_path: Path
) -> None:
    settings = SttSettings.from_env({"STT_MODEL": "base", "VOICE_CACHE_DIR": str(tmp_path)})
    decoder = WhisperDecoder(settings)
    assert (tmp_path / "whisper-base" / "model.bin").exists()
    clip = clip_named(speech_clips, "036_")
    assert normalize_transcript(decoder.decode(read(clip)).text) == clip.transcript_normalized
