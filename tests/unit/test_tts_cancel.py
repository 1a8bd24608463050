"""A cancelled turn sends nothing more, even audio that was already queued to go out.

The servicer is driven directly (no gRPC) so the test decides exactly when responses are
taken off the stream: the engine makes a whole second of audio at once, the test reads only
the first message, cancels, and then reads what is left.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import pytest

from services.tts.chain import EngineChain
from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from voice.v1 import tts_pb2

pytestmark = pytest.mark.unit

RATE = 16000


class BurstEngine:
    """A second of audio in one piece, then waits (as a slow engine would) until stopped."""

    name = "burst"
    sample_rate = RATE

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    def available(self) -> bool:
        return True

    def prepare(self) -> None:
        pass

    async def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]:
        try:
            yield b"\xe8\x03" * RATE  # a second of sound (level 1000)
            await asyncio.Event().wait()
            yield b""
        finally:
            self.closed.set()

    async def aclose(self) -> None:
        pass


class Context:
    async def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")

    async def send_initial_metadata(self, metadata: Any) -> None:
        pass


async def test_audio_queued_before_a_cancel_is_never_sent() -> None:
    engine = BurstEngine()
    servicer = TextToSpeechServicer(EngineChain([engine]), ChunkingConfig(3, 8, 20))
    requests: asyncio.Queue[tts_pb2.SynthesizeRequest | None] = asyncio.Queue()

    async def incoming() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
        while (request := await requests.get()) is not None:
            yield request

    requests.put_nowait(
        tts_pb2.SynthesizeRequest(config=tts_pb2.SynthesizeConfig(sample_rate=RATE))
    )
    requests.put_nowait(
        tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(turn_id="t", text="Hello there. "))
    )
    responses = servicer.Synthesize(incoming(), Context())  # type: ignore[arg-type]
    start = await anext(responses)
    assert start.HasField("start")
    # By now all 50 frames of the burst wait in the stream's outbox.
    requests.put_nowait(tts_pb2.SynthesizeRequest(cancel=tts_pb2.CancelSynthesis(turn_id="t")))
    await asyncio.wait_for(engine.closed.wait(), 5)
    requests.put_nowait(None)
    rest = [response async for response in responses]
    assert [r.WhichOneof("event") for r in rest] == ["end"]
    assert rest[0].end.cancelled


async def test_without_a_cancel_the_same_audio_is_all_sent() -> None:
    """The counterpart: the frames the cancel dropped were really there to be sent."""
    engine = BurstEngine()
    servicer = TextToSpeechServicer(EngineChain([engine]), ChunkingConfig(3, 8, 20))

    async def incoming() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
        yield tts_pb2.SynthesizeRequest(config=tts_pb2.SynthesizeConfig(sample_rate=RATE))
        yield tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(turn_id="t", text="Hello there. "))
        await asyncio.Event().wait()

    responses = cast(
        AsyncGenerator[tts_pb2.SynthesizeResponse, None],
        servicer.Synthesize(incoming(), Context()),  # type: ignore[arg-type]
    )
    kinds = [(await asyncio.wait_for(anext(responses), 5)).WhichOneof("event") for _ in range(51)]
    await responses.aclose()
    assert kinds == ["start"] + ["audio"] * 50
    await asyncio.wait_for(engine.closed.wait(), 5)
