"""The tts servicer over real gRPC, fake engines: framing, resampling, fallback, cache, cancel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import grpc
import numpy as np
import pytest

from services.tts.cache import AudioCache
from services.tts.chain import EngineChain
from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from tests.integration.conftest import serving
from voice.errors import EngineError
from voice.v1 import tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.integration

ENGINE_RATE = 22050
PIECE_S = 0.05


class ToneEngine:
    """A 440 Hz tone, 50 ms per character in 50 ms pieces, so audio length follows the text.

    Records its input, can wait between pieces, fail before its first piece, and tells when a
    stream was closed before it finished (the turn stopped it).
    """

    sample_rate = ENGINE_RATE

    def __init__(self, name: str = "tone", delay_s: float = 0.0) -> None:
        self.name = name
        self.texts: list[str] = []
        self.delay_s = delay_s
        self.fail = False
        self.stopped = asyncio.Event()
        self.finished = 0

    def available(self) -> bool:
        return True

    def prepare(self) -> None:
        pass

    async def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]:
        self.texts.append(text)
        if self.fail:
            raise EngineError(f"{self.name} is unreachable")
        samples = int(ENGINE_RATE * PIECE_S)
        t = np.arange(samples) / ENGINE_RATE
        piece = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype("<i2").tobytes()
        done = False
        try:
            for _ in range(len(text)):
                await asyncio.sleep(self.delay_s)
                yield piece
            done = True
            self.finished += 1
        finally:
            if not done:
                self.stopped.set()

    async def aclose(self) -> None:
        pass


Register = Callable[[grpc.aio.Server], None]


def _register(*engines: ToneEngine, cache: AudioCache | None = None) -> Register:
    servicer = TextToSpeechServicer(EngineChain(list(engines), cache), ChunkingConfig(3, 8, 20))
    return lambda server: tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(servicer, server)


class Stream:
    """One Synthesize call whose requests the test feeds as it goes."""

    def __init__(self, channel: grpc.aio.Channel, rate: int) -> None:
        self.queue: asyncio.Queue[tts_pb2.SynthesizeRequest | None] = asyncio.Queue()

        async def generate() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
            config = tts_pb2.SynthesizeConfig(session_id="t", sample_rate=rate)
            yield tts_pb2.SynthesizeRequest(config=config)
            while (request := await self.queue.get()) is not None:
                yield request

        self.call = tts_pb2_grpc.TextToSpeechServiceStub(channel).Synthesize(generate())

    def text(self, turn_id: str, text: str) -> None:
        self.queue.put_nowait(
            tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(turn_id=turn_id, text=text))
        )

    def flush(self, turn_id: str) -> None:
        self.queue.put_nowait(tts_pb2.SynthesizeRequest(flush=tts_pb2.FlushTurn(turn_id=turn_id)))

    def cancel(self, turn_id: str) -> None:
        self.queue.put_nowait(
            tts_pb2.SynthesizeRequest(cancel=tts_pb2.CancelSynthesis(turn_id=turn_id))
        )

    def close(self) -> None:
        self.queue.put_nowait(None)

    async def read(self) -> tts_pb2.SynthesizeResponse:
        response = await self.call.read()
        assert isinstance(response, tts_pb2.SynthesizeResponse)
        return response

    async def rest(self) -> list[tts_pb2.SynthesizeResponse]:
        items = []
        while (item := await self.call.read()) is not grpc.aio.EOF:
            items.append(item)
        return items

    async def until_end(self, turn_id: str) -> list[tts_pb2.SynthesizeResponse]:
        events = []
        while True:
            event = await self.read()
            events.append(event)
            if event.HasField("end") and event.end.turn_id == turn_id:
                return events


async def speak_turn(stream: Stream, turn_id: str, text: str) -> list[tts_pb2.SynthesizeResponse]:
    for word in text.split(" "):
        stream.text(turn_id, word + " ")
    stream.flush(turn_id)
    return await stream.until_end(turn_id)


def pcm_of(events: list[tts_pb2.SynthesizeResponse]) -> list[bytes]:
    return [event.audio.audio.pcm for event in events if event.HasField("audio")]


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 44100, 48000])
async def test_turn_audio_comes_framed_resampled_and_chunked(rate: int) -> None:
    engine = ToneEngine()
    text = "Sure thing, here it is. The **weather** is mild today."
    async with serving(_register(engine)) as channel:
        stream = Stream(channel, rate)
        events = await speak_turn(stream, "a", text)
        stream.close()
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds[0] == "start" and kinds[1] == "audio" and kinds[-1] == "end"
    assert events[0].start.sample_rate == rate and events[0].start.engine == "tone"
    frames = pcm_of(events)
    assert all(len(frame) == rate // 50 * 2 for frame in frames[:-1])  # 20 ms frames
    assert 0 < len(frames[-1]) <= rate // 50 * 2
    assert not events[-1].end.cancelled and not events[-1].end.error
    assert engine.texts == ["Sure thing, here it is.", "The weather is mild today."]
    labels = [event.audio.text for event in events if event.HasField("audio") and event.audio.text]
    assert labels == engine.texts
    total_s = sum(len(frame) for frame in frames) / 2 / rate
    expected_s = sum(PIECE_S * len(t) for t in engine.texts)
    assert abs(total_s - expected_s) < 0.02


async def test_a_failing_first_engine_falls_back_before_any_audio() -> None:
    edge, piper = ToneEngine("edge"), ToneEngine("piper")
    edge.fail = True
    async with serving(_register(edge, piper)) as channel:
        stream = Stream(channel, 16000)
        events = await speak_turn(stream, "a", "Hello there, my friend. How are you?")
        stream.close()
    assert events[0].start.engine == "piper"
    assert pcm_of(events) and not events[-1].end.error
    assert edge.texts == ["Hello there, my friend."]
    assert piper.texts == ["Hello there, my friend.", "How are you?"]


async def test_when_no_engine_works_the_turn_ends_with_an_error() -> None:
    edge, piper = ToneEngine("edge"), ToneEngine("piper")
    edge.fail = piper.fail = True
    async with serving(_register(edge, piper)) as channel:
        stream = Stream(channel, 16000)
        events = await speak_turn(stream, "a", "Hello there.")
        stream.close()
    assert [event.WhichOneof("event") for event in events] == ["start", "end"]
    assert "edge is unreachable" in events[-1].end.error
    assert "piper is unreachable" in events[-1].end.error


async def test_a_recurring_phrase_is_synthesised_once() -> None:
    engine = ToneEngine()
    async with serving(_register(engine, cache=AudioCache(1 << 20))) as channel:
        stream = Stream(channel, 24000)
        first = await speak_turn(stream, "a", "One moment.")
        again = await speak_turn(stream, "b", "One moment.")
        stream.close()
    assert engine.texts == ["One moment."]
    assert b"".join(pcm_of(first)) == b"".join(pcm_of(again))


async def test_cancel_stops_the_engine_and_sends_nothing_more() -> None:
    engine = ToneEngine(delay_s=0.05)
    async with serving(_register(engine)) as channel:
        stream = Stream(channel, 16000)
        stream.text("b", "One sentence here. Another one follows. ")
        start = await stream.read()
        first_audio = await stream.read()
        stream.cancel("b")
        rest = await stream.until_end("b")
        await asyncio.wait_for(engine.stopped.wait(), 5)
        stream.close()
        tail = await stream.rest()
    assert start.WhichOneof("event") == "start" and first_audio.HasField("audio")
    assert rest[-1].end.cancelled
    assert engine.finished == 0
    assert not [item for item in tail if item.HasField("audio")]


async def test_a_turn_cancelled_before_its_text_is_spoken_still_ends() -> None:
    engine = ToneEngine(delay_s=0.05)
    async with serving(_register(engine)) as channel:
        stream = Stream(channel, 16000)
        stream.text("c", "Hello")
        stream.cancel("c")
        events = await stream.until_end("c")
        stream.close()
    assert [event.WhichOneof("event") for event in events] == ["start", "end"]
    assert events[-1].end.cancelled


async def test_two_turns_on_one_stream_keep_their_audio_apart() -> None:
    engine = ToneEngine()
    async with serving(_register(engine)) as channel:
        stream = Stream(channel, 16000)
        a = await speak_turn(stream, "a", "First turn.")
        b = await speak_turn(stream, "b", "Second one.")
        stream.close()
    assert {e.audio.turn_id for e in a if e.HasField("audio")} == {"a"}
    assert {e.audio.turn_id for e in b if e.HasField("audio")} == {"b"}


async def test_a_flush_for_an_unknown_turn_ends_it_at_once() -> None:
    async with serving(_register(ToneEngine())) as channel:
        stream = Stream(channel, 16000)
        stream.flush("nothing")
        event = await stream.read()
        stream.close()
    assert event.HasField("end") and event.end.turn_id == "nothing"


async def test_a_sample_rate_out_of_range_is_refused() -> None:
    async with serving(_register(ToneEngine())) as channel:
        stream = Stream(channel, 1000)
        stream.close()
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stream.rest()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sample_rate" in (raised.value.details() or "")


async def test_a_stream_that_does_not_start_with_a_config_is_refused() -> None:
    async def requests() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
        yield tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(turn_id="t", text="Hello."))

    async with serving(_register(ToneEngine())) as channel:
        call = tts_pb2_grpc.TextToSpeechServiceStub(channel).Synthesize(requests())
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details() == "the first message must be a config"
