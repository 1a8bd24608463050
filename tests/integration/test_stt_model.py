"""The real Whisper decoder (tiny.en) and Silero VAD on the real speech corpus.

WER is scored through ``WhisperDecoder.decode``, the call every stt decode goes through.
"""

from __future__ import annotations

import asyncio
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
from services.stt.settings import SttSettings
from services.stt.vad import SileroVoiceActivityDetector
from services.stt.whisper import WhisperDecoder
from tests.conftest import ROOT, Clip, clip_named
from tests.integration.conftest import serving
from tools.wer import normalize_transcript, word_errors
from voice.v1 import audio_pb2, stt_pb2, stt_pb2_grpc

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


# The end of turn for the pause-decode test: long enough that the clip's own trailing silence
# (036: digital silence from 1.3 s to its end at 2.03 s) makes a pause but never ends the turn.
PATIENT_END_OF_TURN_MS = 2000


@pytest.fixture(scope="module")
def patient_servicer(decoder: WhisperDecoder) -> Iterator[SpeechToTextServicer]:
    settings = SttSettings.from_env({"STT_END_OF_TURN_MS": str(PATIENT_END_OF_TURN_MS)})
    servicer = SpeechToTextServicer(decoder, SileroVoiceActivityDetector, stream_config(settings))
    yield servicer
    servicer.shutdown()


def _chunks(pcm: bytes) -> list[stt_pb2.TranscribeRequest]:
    step = RATE // 50 * 2
    return [
        stt_pb2.TranscribeRequest(
            audio=audio_pb2.AudioChunk(pcm=pcm[i : i + step], sample_rate=RATE)
        )
        for i in range(0, len(pcm), step)
    ]


async def test_a_question_streamed_through_the_service_is_transcribed_whole(
    patient_servicer: SpeechToTextServicer, speech_clips: list[Clip]
) -> None:
    """The pause decode happens, and the final transcript is its text (what early thinking uses).

    stt reads audio only as it arrives, so the test holds the rest back: the whole clip (whose
    trailing silence passes the 160 ms pause, not the 2 s end of turn set here), then nothing
    until the ``at_pause`` transcript has come, however slowly the machine decodes; then the
    silence that ends the turn. Sent in one go, the turn would end before the pause decode was
    published, and there would be no pause transcript to compare.
    """
    clip = clip_named(speech_clips, "036_")
    pcm = (read(clip) * 32767).astype("<i2").tobytes()
    outbox: asyncio.Queue[stt_pb2.TranscribeRequest | None] = asyncio.Queue()

    async def requests() -> AsyncIterator[stt_pb2.TranscribeRequest]:
        while (request := await outbox.get()) is not None:
            yield request

    def register(server: grpc.aio.Server) -> None:
        stt_pb2_grpc.add_SpeechToTextServiceServicer_to_server(patient_servicer, server)

    before: list[stt_pb2.TranscribeResponse] = []
    after: list[stt_pb2.TranscribeResponse] = []
    async with serving(register) as channel:
        call = stt_pb2_grpc.SpeechToTextServiceStub(channel).Transcribe(requests())
        outbox.put_nowait(
            stt_pb2.TranscribeRequest(config=stt_pb2.TranscribeConfig(sample_rate=RATE))
        )
        for request in _chunks(pcm):
            outbox.put_nowait(request)
        async with asyncio.timeout(60):  # a generous bound for a loaded machine, not a timing
            while not (before and before[-1].transcript.at_pause):
                response = await call.read()
                assert response is not grpc.aio.EOF, (
                    f"the stream ended with no pause decode: {before}"
                )
                assert isinstance(response, stt_pb2.TranscribeResponse)
                assert not response.transcript.final, (
                    f"the turn ended with no pause decode: {before}"
                )
                before.append(response)
        for request in _chunks(b"\x00\x00" * (RATE * (PATIENT_END_OF_TURN_MS + 500) // 1000)):
            outbox.put_nowait(request)
        outbox.put_nowait(None)
        async with asyncio.timeout(60):
            while (response := await call.read()) is not grpc.aio.EOF:
                assert isinstance(response, stt_pb2.TranscribeResponse)
                after.append(response)

    events = [r.speech_event.kind for r in before + after if r.HasField("speech_event")]
    kinds = stt_pb2.SpeechEvent
    assert events[0] == kinds.KIND_SPEECH_STARTED and events[-1] == kinds.KIND_END_OF_TURN, events
    assert kinds.KIND_PAUSE in [r.speech_event.kind for r in before if r.HasField("speech_event")]
    pause_text = before[-1].transcript.text
    finals = [r.transcript for r in after if r.HasField("transcript") and r.transcript.final]
    assert len(finals) == 1, finals
    assert normalize_transcript(finals[0].text) == clip.transcript_normalized
    # The final transcript is the pause decode's text, word for word: the gateway keeps the
    # reply it started at the pause only when the two agree.
    assert not [r for r in after if r.HasField("transcript") and r.transcript.at_pause]
    assert finals[0].text == pause_text


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
