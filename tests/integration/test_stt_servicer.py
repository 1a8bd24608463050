"""The stt servicer over real gRPC, with a fake decoder and an energy VAD."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable

import grpc
import numpy as np
import pytest

from services.stt.endpointing import EndpointConfig
from services.stt.engine import Decoding
from services.stt.servicer import SpeechToTextServicer
from services.stt.streaming import StreamConfig
from tests.integration.conftest import serving
from voice.v1 import audio_pb2, stt_pb2, stt_pb2_grpc

pytestmark = pytest.mark.integration

RATE = 16000


class EnergyVad:
    window_samples = 512

    def probability(self, window: np.ndarray) -> float:
        return 1.0 if float(np.sqrt(np.mean(window**2))) > 0.05 else 0.0


class FakeDecoder:
    """Says how many seconds of audio it was given; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        with self.lock:
            self.calls += 1
        return Decoding(f"heard {len(samples) / RATE:.1f} seconds")


CONFIG = StreamConfig(
    EndpointConfig(
        threshold=0.5, min_speech_s=0.1, pause_s=0.15, end_of_turn_s=0.4, max_utterance_s=30
    ),
    partial_interval_s=0.3,
)


def _tone(seconds: float, rate: int = RATE) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()


def _silence(seconds: float, rate: int = RATE) -> bytes:
    return b"\x00\x00" * int(seconds * rate)


async def _transcribe(
    channel: grpc.aio.Channel, pcm: bytes, rate: int = RATE, end_of_turn_ms: int = 0
) -> list[stt_pb2.TranscribeResponse]:
    async def requests() -> AsyncIterator[stt_pb2.TranscribeRequest]:
        yield stt_pb2.TranscribeRequest(
            config=stt_pb2.TranscribeConfig(
                session_id="t", sample_rate=rate, end_of_turn_ms=end_of_turn_ms
            )
        )
        step = rate // 50 * 2
        for start in range(0, len(pcm), step):
            yield stt_pb2.TranscribeRequest(
                audio=audio_pb2.AudioChunk(pcm=pcm[start : start + step], sample_rate=rate)
            )

    stub = stt_pb2_grpc.SpeechToTextServiceStub(channel)
    return [response async for response in stub.Transcribe(requests())]


def _register(decoder: FakeDecoder) -> object:
    servicer = SpeechToTextServicer(decoder, EnergyVad, CONFIG)
    return lambda server: stt_pb2_grpc.add_SpeechToTextServiceServicer_to_server(servicer, server)


def _kinds(responses: list[stt_pb2.TranscribeResponse]) -> list[str]:
    names = []
    for response in responses:
        if response.HasField("speech_event"):
            names.append(stt_pb2.SpeechEvent.Kind.Name(response.speech_event.kind))
        else:
            names.append("FINAL" if response.transcript.final else "PARTIAL")
    return names


async def test_one_utterance_gives_start_pause_end_and_a_final_transcript() -> None:
    decoder = FakeDecoder()
    async with serving(_register(decoder)) as channel:  # type: ignore[arg-type]
        responses = await _transcribe(channel, _silence(0.5) + _tone(1.2) + _silence(1.0))
    kinds = [k for k in _kinds(responses) if k != "PARTIAL"]
    assert kinds == ["KIND_SPEECH_STARTED", "KIND_PAUSE", "KIND_END_OF_TURN", "FINAL"]
    final = responses[-1].transcript
    assert final.final and final.text.startswith("heard ")
    assert final.speech_start_s == pytest.approx(0.5, abs=0.07)
    assert final.speech_end_s == pytest.approx(1.7, abs=0.07)
    ids = {r.transcript.utterance_id or r.speech_event.utterance_id for r in responses}
    assert len(ids) == 1


async def test_audio_at_another_rate_is_resampled_to_the_same_timing() -> None:
    async with serving(_register(FakeDecoder())) as channel:  # type: ignore[arg-type]
        responses = await _transcribe(
            channel, _silence(0.5, 48000) + _tone(1.0, 48000) + _silence(1.0, 48000), 48000
        )
    final = next(r.transcript for r in responses if r.transcript.final)
    assert final.speech_end_s == pytest.approx(1.5, abs=0.07)


async def test_silence_alone_decodes_nothing() -> None:
    decoder = FakeDecoder()
    async with serving(_register(decoder)) as channel:  # type: ignore[arg-type]
        responses = await _transcribe(channel, _silence(2.0))
    assert responses == [] and decoder.calls == 0


async def test_odd_length_audio_is_refused_with_invalid_argument() -> None:
    async with serving(_register(FakeDecoder())) as channel:  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _transcribe(channel, b"\x01\x02\x03")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "even" in (raised.value.details() or "")


def _servicer(decoder: FakeDecoder, max_streams: int = 4) -> SpeechToTextServicer:
    return SpeechToTextServicer(decoder, EnergyVad, CONFIG, max_streams=max_streams)


def _add(servicer: SpeechToTextServicer) -> Callable[[grpc.aio.Server], None]:
    return lambda server: stt_pb2_grpc.add_SpeechToTextServiceServicer_to_server(servicer, server)


async def _open_stream(
    stub: stt_pb2_grpc.SpeechToTextServiceStub, hold: asyncio.Event, pcm: bytes = b""
) -> grpc.aio.StreamStreamCall[stt_pb2.TranscribeRequest, stt_pb2.TranscribeResponse]:
    async def requests() -> AsyncIterator[stt_pb2.TranscribeRequest]:
        yield stt_pb2.TranscribeRequest(
            config=stt_pb2.TranscribeConfig(session_id="held", sample_rate=RATE)
        )
        step = RATE // 50 * 2
        for start in range(0, len(pcm), step):
            yield stt_pb2.TranscribeRequest(
                audio=audio_pb2.AudioChunk(pcm=pcm[start : start + step], sample_rate=RATE)
            )
        await hold.wait()

    return stub.Transcribe(requests())


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - polls a counter the servicer keeps
        await asyncio.sleep(0.01)


async def test_a_stream_beyond_the_maximum_gets_resource_exhausted() -> None:
    servicer = _servicer(FakeDecoder(), max_streams=1)
    hold = asyncio.Event()
    async with serving(_add(servicer)) as channel:
        stub = stt_pb2_grpc.SpeechToTextServiceStub(channel)
        first = await _open_stream(stub, hold)
        await asyncio.wait_for(_until(lambda: servicer.active_streams == 1), 10)
        second = await _open_stream(stub, hold)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await asyncio.wait_for(second.read(), 10)
        hold.set()
        assert [r async for r in first] == []
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "STT_MAX_STREAMS" in (raised.value.details() or "")
    assert servicer.active_streams == 0


async def test_a_chunk_longer_than_a_second_is_refused_with_a_clear_message() -> None:
    async with serving(_register(FakeDecoder())) as channel:  # type: ignore[arg-type]
        stub = stt_pb2_grpc.SpeechToTextServiceStub(channel)

        async def requests() -> AsyncIterator[stt_pb2.TranscribeRequest]:
            yield stt_pb2.TranscribeRequest(config=stt_pb2.TranscribeConfig(sample_rate=RATE))
            chunk = audio_pb2.AudioChunk(pcm=_silence(1.5), sample_rate=RATE)
            yield stt_pb2.TranscribeRequest(audio=chunk)

        with pytest.raises(grpc.aio.AioRpcError) as raised:
            [r async for r in stub.Transcribe(requests())]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "over 1 s" in (raised.value.details() or "")


async def test_a_stream_that_breaks_off_mid_utterance_frees_everything() -> None:
    decoder = FakeDecoder()
    servicer = _servicer(decoder)
    hold = asyncio.Event()
    async with serving(_add(servicer)) as channel:
        stub = stt_pb2_grpc.SpeechToTextServiceStub(channel)
        call = await _open_stream(stub, hold, _silence(0.3) + _tone(1.0))
        first = await asyncio.wait_for(call.read(), 10)
        assert first.speech_event.kind == stt_pb2.SpeechEvent.KIND_SPEECH_STARTED
        assert servicer.active_streams == 1
        call.cancel()  # the client goes away in the middle of speech
        await asyncio.wait_for(_until(lambda: servicer.active_streams == 0), 10)
        # The service goes on serving new streams.
        responses = await _transcribe(channel, _silence(0.3) + _tone(1.0) + _silence(1.0))
    assert any(r.transcript.final for r in responses)
    assert servicer.active_streams == 0
    servicer.shutdown()


@pytest.mark.parametrize(
    ("first", "details"),
    [
        (
            stt_pb2.TranscribeRequest(audio=audio_pb2.AudioChunk(pcm=b"\x00\x00")),
            "the first message must be a config",
        ),
        (
            stt_pb2.TranscribeRequest(config=stt_pb2.TranscribeConfig(sample_rate=96000)),
            "sample_rate 96000 is outside [8000, 48000]",
        ),
    ],
)
async def test_a_stream_that_does_not_open_with_a_usable_config_is_refused(
    first: stt_pb2.TranscribeRequest, details: str
) -> None:
    servicer = _servicer(FakeDecoder())

    async def requests() -> AsyncIterator[stt_pb2.TranscribeRequest]:
        yield first

    async with serving(_add(servicer)) as channel:
        call = stt_pb2_grpc.SpeechToTextServiceStub(channel).Transcribe(requests())
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == details
    assert servicer.active_streams == 0


async def test_a_stream_can_ask_for_a_longer_end_of_turn_silence() -> None:
    # 0.6 s of silence: the service's 0.4 s ends the turn, a stream's own 1.0 s does not.
    pcm = _silence(0.3) + _tone(0.8) + _silence(0.6) + _tone(0.5) + _silence(1.5)
    async with serving(_register(FakeDecoder())) as channel:  # type: ignore[arg-type]
        default = await _transcribe(channel, pcm)
        longer = await _transcribe(channel, pcm, end_of_turn_ms=1000)
    assert [k for k in _kinds(default) if k != "PARTIAL"].count("FINAL") == 2
    kinds = [k for k in _kinds(longer) if k != "PARTIAL"]
    assert kinds.count("FINAL") == 1 and "KIND_SPEECH_RESUMED" in kinds
    end = next(
        r.speech_event
        for r in longer
        if r.speech_event.kind == stt_pb2.SpeechEvent.KIND_END_OF_TURN
    )
    assert end.stream_time_s - end.speech_end_s == pytest.approx(1.0, abs=0.07)


@pytest.mark.parametrize("end_of_turn_ms", [100, 20_000])
async def test_an_end_of_turn_silence_out_of_range_is_refused(end_of_turn_ms: int) -> None:
    async with serving(_register(FakeDecoder())) as channel:  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _transcribe(channel, b"", end_of_turn_ms=end_of_turn_ms)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "end_of_turn_ms" in (refused.value.details() or "")
