"""The decode pool: urgent decodes first, partials only with a worker to spare, cancellation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import numpy as np
import pytest

from services.stt.engine import DecodeCancelledError, Decoding
from services.stt.pool import DecodePool

pytestmark = pytest.mark.unit


class GatedDecoder:
    """Blocks each decode until released; records the order in which decodes began."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.running = threading.Semaphore(0)
        self.release = threading.Event()

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        name = f"{len(samples)}"
        self.started.append(name)
        self.running.release()
        self.release.wait(timeout=10)
        if name == "666":
            raise RuntimeError("broken decode")
        if cancel is not None and cancel.is_set():
            raise DecodeCancelledError
        return Decoding(name)


@pytest.fixture
def decoder() -> Iterator[GatedDecoder]:
    decoder = GatedDecoder()
    yield decoder
    decoder.release.set()


def _samples(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float32)


async def _wait_running(decoder: GatedDecoder, count: int) -> None:
    for _ in range(count):
        assert await asyncio.to_thread(decoder.running.acquire, True, 10)


async def test_a_partial_never_takes_the_last_free_worker(decoder: GatedDecoder) -> None:
    pool = DecodePool(decoder, workers=2, reserve=1)
    try:
        partial = pool.try_partial(_samples(1), threading.Event())
        assert partial is not None
        await _wait_running(decoder, 1)
        # One worker is busy with that partial: another partial would leave none free.
        assert pool.try_partial(_samples(2), threading.Event()) is None
        assert pool.stats.partial_skipped == 1
        urgent = pool.submit(_samples(3))
        await _wait_running(decoder, 1)
        decoder.release.set()
        assert (await partial).text == "1"
        assert (await urgent).text == "3"
    finally:
        pool.shutdown()


async def test_urgent_decodes_are_taken_before_queued_partials(decoder: GatedDecoder) -> None:
    pool = DecodePool(decoder, workers=1, reserve=0)
    try:
        first = pool.submit(_samples(10))
        await _wait_running(decoder, 1)
        # The only worker is busy: a partial is refused, urgent work queues in order.
        assert pool.try_partial(_samples(11), threading.Event()) is None
        second, third = pool.submit(_samples(12)), pool.submit(_samples(13))
        decoder.release.set()
        texts = [(await f).text for f in (first, second, third)]
        assert texts == ["10", "12", "13"]
        assert decoder.started == ["10", "12", "13"]
    finally:
        pool.shutdown()


async def test_a_cancelled_decode_fails_with_decode_cancelled(decoder: GatedDecoder) -> None:
    pool = DecodePool(decoder, workers=1, reserve=0)
    try:
        running = pool.submit(_samples(20))
        await _wait_running(decoder, 1)
        cancel = threading.Event()
        queued = pool.submit(_samples(21), cancel)
        cancel.set()  # given up before it started: it never reaches the decoder
        decoder.release.set()
        assert (await running).text == "20"
        with pytest.raises(DecodeCancelledError):
            await queued
        assert "21" not in decoder.started
        assert pool.stats.cancelled == 1
    finally:
        pool.shutdown()


async def test_a_failing_decode_reaches_its_caller_and_the_worker_goes_on(
    decoder: GatedDecoder,
) -> None:
    pool = DecodePool(decoder, workers=1, reserve=0)
    decoder.release.set()
    try:
        with pytest.raises(RuntimeError, match="broken"):
            await pool.submit(_samples(666))
        assert (await pool.submit(_samples(5))).text == "5"
    finally:
        pool.shutdown()


async def test_a_shut_down_pool_refuses_work(decoder: GatedDecoder) -> None:
    pool = DecodePool(decoder, workers=1)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(_samples(1))
