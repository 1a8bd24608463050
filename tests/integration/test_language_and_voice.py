"""A stream's language (stt) and voice (tts) over real gRPC, with fake engines: honoured when a
stage can serve them, refused with INVALID_ARGUMENT and a clear message when it cannot, and
accepted streams answer with their headers before any audio or text."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator

import grpc
import numpy as np
import pytest

from services.stt.endpointing import EndpointConfig
from services.stt.engine import Decoding
from services.stt.servicer import SpeechToTextServicer
from services.stt.streaming import StreamConfig
from services.tts.chain import EngineChain
from services.tts.edge import EdgeEngine
from services.tts.piper import PiperEngine
from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from tests.integration.conftest import serving
from voice.errors import EngineError
from voice.v1 import audio_pb2, stt_pb2, stt_pb2_grpc, tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.integration

RATE = 16000

# ----------------------------------------------------------------- stt


class EnergyVad:
    window_samples = 512

    def probability(self, window: np.ndarray) -> float:
        return 1.0 if float(np.sqrt(np.mean(window**2))) > 0.05 else 0.0


class LanguageFakeDecoder:
    """Says which language it was asked to decode in, as Whisper would be told it."""

    def __init__(self, languages: set[str], *, english_only: bool) -> None:
        self.name = "whisper tiny.en" if english_only else "whisper base"
        self.languages = frozenset(languages)
        self.english_only = english_only
        self.asked: list[str] = []
        self._lock = threading.Lock()

    def decode(
        self, samples: np.ndarray, cancel: threading.Event | None = None, language: str = ""
    ) -> Decoding:
        with self._lock:
            self.asked.append(language)
        return Decoding(f"heard in {language or 'default'}")


class PlainFakeDecoder:
    """A decoder that knows nothing of languages (like the instant one)."""

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        return Decoding("heard")


CONFIG = StreamConfig(
    EndpointConfig(
        threshold=0.5, min_speech_s=0.1, pause_s=0.15, end_of_turn_s=0.4, max_utterance_s=30
    ),
    partial_interval_s=0.3,
)


def _utterance() -> bytes:
    t = np.arange(int(1.0 * RATE)) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()
    silence = b"\x00\x00" * int(0.3 * RATE)
    return silence + tone + silence * 4


async def _transcribe(
    channel: grpc.aio.Channel, language: str, pcm: bytes
) -> list[stt_pb2.TranscribeResponse]:
    async def requests() -> AsyncIterator[stt_pb2.TranscribeRequest]:
        config = stt_pb2.TranscribeConfig(session_id="t", sample_rate=RATE, language=language)
        yield stt_pb2.TranscribeRequest(config=config)
        step = RATE // 50 * 2
        for start in range(0, len(pcm), step):
            yield stt_pb2.TranscribeRequest(
                audio=audio_pb2.AudioChunk(pcm=pcm[start : start + step], sample_rate=RATE)
            )

    stub = stt_pb2_grpc.SpeechToTextServiceStub(channel)
    return [response async for response in stub.Transcribe(requests())]


async def _refused_stt(channel: grpc.aio.Channel, language: str) -> grpc.aio.AioRpcError:
    """Open a stream with only its config (the gateway sends audio only once it is accepted)."""
    never = asyncio.Event()

    async def config_only() -> AsyncIterator[stt_pb2.TranscribeRequest]:
        config = stt_pb2.TranscribeConfig(session_id="t", sample_rate=RATE, language=language)
        yield stt_pb2.TranscribeRequest(config=config)
        await never.wait()

    call = stt_pb2_grpc.SpeechToTextServiceStub(channel).Transcribe(config_only())
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await asyncio.wait_for(call.read(), 5.0)
    return refused.value


def _stt(decoder: object) -> SpeechToTextServicer:
    return SpeechToTextServicer(decoder, EnergyVad, CONFIG)  # type: ignore[arg-type]


def _register_stt(servicer: SpeechToTextServicer) -> object:
    return lambda server: stt_pb2_grpc.add_SpeechToTextServiceServicer_to_server(servicer, server)


def _final(responses: list[stt_pb2.TranscribeResponse]) -> str:
    finals = [r.transcript.text for r in responses if r.transcript.final]
    assert finals, responses
    return finals[-1]


async def test_an_english_only_model_refuses_another_language_and_says_what_it_serves() -> None:
    decoder = LanguageFakeDecoder({"en"}, english_only=True)
    async with serving(_register_stt(_stt(decoder))) as channel:  # type: ignore[arg-type]
        refused = await _refused_stt(channel, "fr-FR")
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.details() or ""
    assert "'fr-FR'" in details and "whisper tiny.en" in details
    assert "English only" in details and "'en'" in details
    assert decoder.asked == []  # refused before any audio was taken


async def test_english_in_any_region_reaches_every_decode_of_the_stream() -> None:
    decoder = LanguageFakeDecoder({"en"}, english_only=True)
    async with serving(_register_stt(_stt(decoder))) as channel:  # type: ignore[arg-type]
        responses = await _transcribe(channel, "en-GB", _utterance())
    assert _final(responses) == "heard in en"
    assert decoder.asked and set(decoder.asked) == {"en"}


async def test_a_multilingual_model_decodes_in_the_language_asked_for() -> None:
    decoder = LanguageFakeDecoder({"en", "de", "fr"}, english_only=False)
    servicer = _stt(decoder)
    async with serving(_register_stt(servicer)) as channel:  # type: ignore[arg-type]
        german = await _transcribe(channel, "de", _utterance())
        default = await _transcribe(channel, "", _utterance())
        refused = await _refused_stt(channel, "xx")
    assert _final(german) == "heard in de"
    assert _final(default) == "heard in default"
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'xx'" in (refused.details() or "")
    assert servicer.active_streams == 0


async def test_a_decoder_without_languages_takes_any() -> None:
    async with serving(_register_stt(_stt(PlainFakeDecoder()))) as channel:  # type: ignore[arg-type]
        responses = await _transcribe(channel, "fr", _utterance())
    assert _final(responses) == "heard"


async def test_an_accepted_stt_stream_sends_its_headers_before_any_audio() -> None:
    decoder = LanguageFakeDecoder({"en"}, english_only=True)
    async with serving(_register_stt(_stt(decoder))) as channel:  # type: ignore[arg-type]
        done = asyncio.Event()

        async def config_only() -> AsyncIterator[stt_pb2.TranscribeRequest]:
            config = stt_pb2.TranscribeConfig(session_id="t", sample_rate=RATE, language="en")
            yield stt_pb2.TranscribeRequest(config=config)
            await done.wait()

        call = stt_pb2_grpc.SpeechToTextServiceStub(channel).Transcribe(config_only())
        await asyncio.wait_for(call.initial_metadata(), 5.0)
        assert not call.done()
        done.set()
        call.cancel()


# ----------------------------------------------------------------- tts

ENGINE_RATE = 16000


class VoicedEngine:
    """A tone engine with voices like a real one: records the voice each chunk was asked in."""

    sample_rate = ENGINE_RATE

    def __init__(self, name: str, voices: str, names: set[str] | None) -> None:
        self.name = name
        self.voices = voices
        self._names = names  # None: any voice name of Edge's shape
        self.asked: list[str] = []
        self.fail = False

    def serves_voice(self, voice: str) -> bool:
        if self._names is None:
            return EdgeEngine.serves_voice(voice)
        return not voice or voice in self._names

    def available(self) -> bool:
        return True

    def prepare(self) -> None:
        pass

    async def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]:
        self.asked.append(voice)
        if self.fail:
            raise EngineError(f"{self.name} is unreachable")
        yield b"\x10\x00" * (ENGINE_RATE // 10)

    async def aclose(self) -> None:
        pass


def _edge() -> VoicedEngine:
    return VoicedEngine("edge", EdgeEngine.voices, None)


def _piper() -> VoicedEngine:
    return VoicedEngine("piper", PiperEngine.voices, {"joe"})


def _register_tts(*engines: VoicedEngine) -> object:
    servicer = TextToSpeechServicer(EngineChain(list(engines)), ChunkingConfig(3, 8, 20))
    return lambda server: tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(servicer, server)


async def _speak(
    channel: grpc.aio.Channel, voice: str, text: str
) -> list[tts_pb2.SynthesizeResponse]:
    async def requests() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
        config = tts_pb2.SynthesizeConfig(session_id="t", sample_rate=RATE, voice=voice)
        yield tts_pb2.SynthesizeRequest(config=config)
        yield tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(turn_id="a", text=text))
        yield tts_pb2.SynthesizeRequest(flush=tts_pb2.FlushTurn(turn_id="a"))

    stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
    return [response async for response in stub.Synthesize(requests())]


async def test_a_voice_no_engine_serves_is_refused_with_what_each_speaks() -> None:
    piper = _piper()
    async with serving(_register_tts(piper)) as channel:  # type: ignore[arg-type]
        never = asyncio.Event()

        async def config_only() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
            config = tts_pb2.SynthesizeConfig(sample_rate=RATE, voice="en-GB-SoniaNeural")
            yield tts_pb2.SynthesizeRequest(config=config)
            await never.wait()

        call = tts_pb2_grpc.TextToSpeechServiceStub(channel).Synthesize(config_only())
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await asyncio.wait_for(call.read(), 5.0)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = refused.value.details() or ""
    assert "'en-GB-SoniaNeural'" in details and "piper speaks one voice, joe" in details
    assert piper.asked == []


async def test_the_voice_asked_for_picks_the_engine_that_serves_it() -> None:
    edge, piper = _edge(), _piper()
    async with serving(_register_tts(edge, piper)) as channel:  # type: ignore[arg-type]
        sonia = await _speak(channel, "en-GB-SoniaNeural", "Hello there.")
        joe = await _speak(channel, "joe", "Hello there.")
        default = await _speak(channel, "", "Hello there.")
    assert sonia[0].start.engine == "edge" and not sonia[-1].end.error
    assert joe[0].start.engine == "piper" and not joe[-1].end.error  # edge does not speak joe
    assert default[0].start.engine == "edge"
    assert edge.asked == ["en-GB-SoniaNeural", ""]
    assert piper.asked == ["joe"]


async def test_a_turn_never_falls_back_to_an_engine_without_its_voice() -> None:
    edge, piper = _edge(), _piper()
    edge.fail = True
    async with serving(_register_tts(edge, piper)) as channel:  # type: ignore[arg-type]
        events = await _speak(channel, "en-GB-SoniaNeural", "Hello there.")
    assert "edge is unreachable" in events[-1].end.error
    assert piper.asked == []  # joe would be the wrong voice


async def test_an_accepted_tts_stream_sends_its_headers_before_any_text() -> None:
    async with serving(_register_tts(_piper())) as channel:  # type: ignore[arg-type]
        done = asyncio.Event()

        async def config_only() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
            config = tts_pb2.SynthesizeConfig(session_id="t", sample_rate=RATE, voice="joe")
            yield tts_pb2.SynthesizeRequest(config=config)
            await done.wait()

        call = tts_pb2_grpc.TextToSpeechServiceStub(channel).Synthesize(config_only())
        await asyncio.wait_for(call.initial_metadata(), 5.0)
        assert not call.done()
        done.set()
        call.cancel()


@pytest.mark.parametrize(
    ("voice", "piper", "edge"),
    [
        ("", True, True),
        ("joe", True, False),
        ("JOE", True, False),
        ("en_US-joe-medium", True, False),
        ("en-GB-SoniaNeural", False, True),
        ("Microsoft Server Speech Text to Speech Voice (en-US, AriaNeural)", False, True),
        ("sonia", False, False),
    ],
)
def test_which_voice_names_the_real_engines_serve(voice: str, piper: bool, edge: bool) -> None:
    assert PiperEngine.serves_voice(voice) is piper
    assert EdgeEngine.serves_voice(voice) is edge
