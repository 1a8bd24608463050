"""The embedded Piper voice behind the streaming engine shape: pieces as made, a cancel that stops.

These load the real voice (about a second); they need no network and no other process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from services.tts.piper import PiperEngine

pytestmark = pytest.mark.integration

SENTENCES = [
    "The first sentence is short.",
    "The second one takes a little longer to say out loud.",
    "Then a third sentence follows the second.",
    "A fourth comes after that, with a few more words in it.",
    "And a fifth one closes the paragraph.",
    "Finally, a sixth sentence ends it all.",
]


class CountingSession:
    """Wraps Piper's session to count onnxruntime runs and the runs stopped by a cancel."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.runs = 0
        self.terminated = 0

    def run(self, output_names: Any, input_feed: Any, options: Any = None) -> Any:
        self.runs += 1
        try:
            return self.inner.run(output_names, input_feed, options)
        except Exception:
            if options is not None and options.terminate:
                self.terminated += 1
            raise


@pytest.fixture(scope="module")
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


@pytest.fixture(scope="module")
def piper(executor: ThreadPoolExecutor) -> PiperEngine:
    engine = PiperEngine(threads=1, executor=executor)
    engine.warm_up()
    return engine


def counting(piper: PiperEngine) -> CountingSession:
    wrapper = piper._session  # the cancellable wrapper around onnxruntime's session
    counter = CountingSession(wrapper._session)
    wrapper._session = counter
    return counter


async def test_a_chunk_streams_one_piece_per_sentence(piper: PiperEngine) -> None:
    pieces = [piece async for piece in piper.stream(" ".join(SENTENCES[:3]))]
    assert len(pieces) == 3
    assert all(len(piece) > 0.5 * piper.sample_rate * 2 for piece in pieces)  # > 0.5 s each


async def test_closing_the_stream_stops_the_synthesis_in_progress(
    piper: PiperEngine, executor: ThreadPoolExecutor
) -> None:
    counter = counting(piper)
    try:
        stream = piper.stream(" ".join(SENTENCES))
        await anext(stream)
        await stream.aclose()
        # The single worker is free again once the job has stopped.
        await asyncio.get_running_loop().run_in_executor(executor, lambda: None)
    finally:
        piper._session._session = counter.inner
    # The sentence in progress was stopped (or had not begun); none after it was started.
    assert counter.runs <= 2 and counter.terminated <= 1


async def test_a_stream_closed_before_its_job_starts_does_no_work(
    piper: PiperEngine, executor: ThreadPoolExecutor
) -> None:
    counter = counting(piper)
    busy = asyncio.get_running_loop().run_in_executor(executor, time.sleep, 0.2)
    try:
        stream = piper.stream(SENTENCES[0])
        pending = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        pending.cancel()
        await asyncio.gather(pending, return_exceptions=True)
        await busy
        await asyncio.get_running_loop().run_in_executor(executor, lambda: None)
    finally:
        piper._session._session = counter.inner
    assert counter.runs == 0


async def test_the_engine_still_works_after_a_cancel(piper: PiperEngine) -> None:
    stream = piper.stream(" ".join(SENTENCES))
    await anext(stream)
    await stream.aclose()
    pieces = [piece async for piece in piper.stream("Hello there.")]
    assert len(pieces) == 1 and len(pieces[0]) > 0
