"""The tts servicer over real gRPC with a fake engine: framing, resampling, cancel, bad input."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest

from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from tests.integration.conftest import serving
from voice.v1 import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.integration

ENGINE_RATE = 22050


class ToneEngine:
    """A 440 Hz tone, 50 ms per character, so audio length follows the text; records its input."""

    name = "tone"
    sample_rate = ENGINE_RATE

    def __init__(self, delay_s: float = 0.0) -> None:
        self.texts: list[str] = []
        self.delay_s = delay_s
        self.calls = threading.Semaphore(0)

    def synthesize(self, text: str) -> Iterator[bytes]:
        self.texts.append(text)
        self.calls.release()
        threading.Event().wait(self.delay_s)
        samples = int(ENGINE_RATE * 0.05 * len(text))
        t = np.arange(samples) / ENGINE_RATE
        yield (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()


def _register(engine: ToneEngine) -> object:
    servicer = TextToSpeechServicer(engine, ChunkingConfig(3, 8, 20))
    return lambda server: tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(servicer, server)


def _stream(
    channel: grpc.aio.Channel, rate: int, requests: list[tts_pb2.SynthesizeRequest]
) -> grpc.aio.StreamStreamCall:
    queue: asyncio.Queue[tts_pb2.SynthesizeRequest | None] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def generate() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
        yield tts_pb2.SynthesizeRequest(
            config=tts_pb2.SynthesizeConfig(session_id="t", sample_rate=rate)
        )
        while (request := await queue.get()) is not None:
            yield request

    call = tts_pb2_grpc.TextToSpeechServiceStub(channel).Synthesize(generate())
    call.queue = queue  # type: ignore[attr-defined]
    return call


def _text(turn_id: str, text: str) -> tts_pb2.SynthesizeRequest:
    return tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(turn_id=turn_id, text=text))


def _flush(turn_id: str) -> tts_pb2.SynthesizeRequest:
    return tts_pb2.SynthesizeRequest(flush=tts_pb2.FlushTurn(turn_id=turn_id))


async def test_turn_audio_comes_framed_resampled_and_chunked() -> None:
    engine = ToneEngine()
    text = "Sure thing, here it is. The **weather** is mild today."
    deltas = [_text("a", word + " ") for word in text.split(" ")]
    async with serving(_register(engine)) as channel:  # type: ignore[arg-type]
        call = _stream(channel, 24000, [*deltas, _flush("a"), None])  # type: ignore[list-item]
        events = [response async for response in call]
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert events[0].start.sample_rate == 24000 and events[0].start.engine == "tone"
    frames = [event.audio.audio.pcm for event in events if event.HasField("audio")]
    assert all(len(frame) == 960 for frame in frames[:-1])  # 20 ms at 24 kHz
    assert not events[-1].end.cancelled
    assert engine.texts == ["Sure thing, here it is.", "The weather is mild today."]
    total_s = sum(len(frame) for frame in frames) / 2 / 24000
    expected_s = sum(0.05 * len(t) for t in engine.texts)
    assert abs(total_s - expected_s) < 0.05


async def test_cancel_ends_the_turn_and_sends_no_more_audio() -> None:
    engine = ToneEngine(delay_s=0.3)
    async with serving(_register(engine)) as channel:  # type: ignore[arg-type]
        call = _stream(channel, 16000, [_text("b", "One sentence here. Another one follows. ")])
        first = await call.read()
        assert first.WhichOneof("event") == "start"
        call.queue.put_nowait(
            tts_pb2.SynthesizeRequest(cancel=tts_pb2.CancelSynthesis(turn_id="b"))
        )  # type: ignore[attr-defined]
        response = await call.read()
        call.queue.put_nowait(None)  # type: ignore[attr-defined]
        rest = []
        while (item := await call.read()) is not grpc.aio.EOF:
            rest.append(item)
    assert response.WhichOneof("event") == "end" and response.end.cancelled
    assert not [r for r in rest if r.HasField("audio")]


async def test_a_sample_rate_out_of_range_is_refused() -> None:
    async with serving(_register(ToneEngine())) as channel:  # type: ignore[arg-type]
        call = _stream(channel, 1000, [None])  # type: ignore[list-item]
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            async for _ in call:
                pass
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sample_rate" in (raised.value.details() or "")
