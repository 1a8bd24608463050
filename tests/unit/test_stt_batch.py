"""Batching urgent decodes: what the collector takes from the queue, and the pool around it."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import pytest

from services.stt.batcher import BatchCollector, BatchPolicy, DecodeRequest
from services.stt.engine import DecodeCancelledError, Decoding
from services.stt.pool import DecodePool
from services.stt.settings import SttSettings
from voice.errors import SettingsError

pytestmark = pytest.mark.unit

Entry = tuple[int, int, str | None]


def _queue(*entries: Entry) -> queue.PriorityQueue[Entry]:
    source: queue.PriorityQueue[Entry] = queue.PriorityQueue()
    for entry in entries:
        source.put(entry)
    return source


def _drain(source: queue.PriorityQueue[Entry]) -> list[Entry]:
    out = []
    while not source.empty():
        out.append(source.get_nowait())
    return out


def _same_letter(first: str, item: str) -> bool:
    return item[0] == first[0]


def test_the_collector_takes_what_is_queued_up_to_the_limit() -> None:
    source = _queue((0, 1, "a1"), (0, 2, "a2"), (0, 3, "a3"))
    collector = BatchCollector(BatchPolicy(max_batch=3), _same_letter)
    assert collector.collect("a0", source) == ["a0", "a1", "a2"]
    assert _drain(source) == [(0, 3, "a3")]


def test_an_item_that_does_not_join_goes_back_in_its_place() -> None:
    source = _queue((0, 1, "a1"), (0, 2, "b2"), (0, 3, "a3"), (1, 4, "a4"))
    collector = BatchCollector(BatchPolicy(max_batch=8), _same_letter)
    assert collector.collect("a0", source) == ["a0", "a1"]
    assert _drain(source) == [(0, 2, "b2"), (0, 3, "a3"), (1, 4, "a4")]


def test_a_stop_marker_ends_the_batch_and_stays_queued() -> None:
    source = _queue((0, 1, "a1"), (2, 2, None))
    collector = BatchCollector(BatchPolicy(max_batch=8), _same_letter)
    assert collector.collect("a0", source) == ["a0", "a1"]
    assert _drain(source) == [(2, 2, None)]


def test_without_a_window_a_lone_item_is_not_held() -> None:
    source = _queue()
    # A window of 0 never blocks on the queue: the call returns with the item alone.
    assert BatchCollector(BatchPolicy(max_batch=4), _same_letter).collect("a0", source) == ["a0"]


def test_a_window_waits_for_items_that_arrive_after_the_first() -> None:
    source = _queue()
    collector = BatchCollector(BatchPolicy(max_batch=2, window_s=30.0), _same_letter)
    collected: list[str] = []
    worker = threading.Thread(target=lambda: collected.extend(collector.collect("a0", source)))
    worker.start()
    source.put((0, 1, "a1"))  # the batch is full with it: the worker returns at once
    worker.join(timeout=30)
    assert collected == ["a0", "a1"]


def test_a_window_ends_when_the_clock_passes_it() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # each look at the clock moves it a second: the window is spent
        return now[0]

    source = _queue()
    collector = BatchCollector(BatchPolicy(max_batch=4, window_s=0.5), _same_letter, clock)
    assert collector.collect("a0", source) == ["a0"]


def test_a_policy_is_checked() -> None:
    assert not BatchPolicy().enabled
    assert BatchPolicy(max_batch=2).enabled
    with pytest.raises(ValueError):
        BatchPolicy(max_batch=0)
    with pytest.raises(ValueError):
        BatchPolicy(max_batch=2, window_s=-1)


def test_batch_settings() -> None:
    defaults = SttSettings.from_env({})
    assert (defaults.max_batch, defaults.batch_window_ms) == (1, 0)
    settings = SttSettings.from_env({"STT_MAX_BATCH": "8", "STT_BATCH_WINDOW_MS": "5"})
    assert (settings.max_batch, settings.batch_window_ms) == (8, 5)
    for environ in ({"STT_MAX_BATCH": "0"}, {"STT_BATCH_WINDOW_MS": "-1"}):
        with pytest.raises(SettingsError):
            SttSettings.from_env(environ)


class GatedBatchDecoder:
    """A batch decoder whose decodes block until released; records what ran, and how."""

    def __init__(self, policy: BatchPolicy) -> None:
        self.batch_policy = policy
        self.calls: list[list[str]] = []
        self.running = threading.Semaphore(0)
        self.release = threading.Event()

    def batchable(self, samples: np.ndarray) -> bool:
        return len(samples) < 1000

    def _text(self, samples: np.ndarray, cancel: threading.Event | None) -> str:
        if cancel is not None and cancel.is_set():
            raise DecodeCancelledError
        if len(samples) == 666:
            raise RuntimeError("broken decode")
        return str(len(samples))

    def decode(self, samples: np.ndarray, cancel: threading.Event | None = None) -> Decoding:
        self.calls.append([f"single {len(samples)}"])
        self.running.release()
        self.release.wait(timeout=10)
        return Decoding(self._text(samples, cancel))

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Decoding | BaseException]:
        self.calls.append([f"{len(r.samples)}{r.language}" for r in requests])
        self.running.release()
        self.release.wait(timeout=10)
        outcomes: list[Decoding | BaseException] = []
        for request in requests:
            try:
                outcomes.append(Decoding(self._text(request.samples, request.cancel)))
            except Exception as error:
                outcomes.append(error)
        return outcomes


@pytest.fixture
def decoder() -> Iterator[GatedBatchDecoder]:
    decoder = GatedBatchDecoder(BatchPolicy(max_batch=3))
    yield decoder
    decoder.release.set()


def _samples(n: int) -> np.ndarray:
    return np.zeros(n, dtype=np.float32)


async def _wait_running(decoder: GatedBatchDecoder) -> None:
    assert await asyncio.to_thread(decoder.running.acquire, True, 10)


async def _busy_pool(
    decoder: GatedBatchDecoder, batching: BatchPolicy | None = None
) -> tuple[DecodePool, asyncio.Future[Decoding]]:
    """A one-worker pool whose worker is busy with a first decode (of 1 sample)."""
    pool = DecodePool(decoder, workers=1, reserve=0, batching=batching)
    first = pool.submit(_samples(1))
    await _wait_running(decoder)
    return pool, first


async def test_a_lone_urgent_decode_runs_alone_and_at_once(decoder: GatedBatchDecoder) -> None:
    pool = DecodePool(decoder, workers=1, reserve=0)
    decoder.release.set()
    try:
        assert (await pool.submit(_samples(7))).text == "7"
        assert decoder.calls == [["single 7"]]
        assert pool.stats.batches == 0
    finally:
        pool.shutdown()


async def test_urgent_decodes_that_queued_together_run_as_one_batch(
    decoder: GatedBatchDecoder,
) -> None:
    pool, first = await _busy_pool(decoder)
    try:
        queued = [pool.submit(_samples(n)) for n in (10, 11, 12, 13)]
        decoder.release.set()
        texts = [(await f).text for f in (first, *queued)]
        assert texts == ["1", "10", "11", "12", "13"]
        # At most three share a batch; the fourth, alone, takes the plain path.
        assert decoder.calls == [["single 1"], ["10", "11", "12"], ["single 13"]]
        assert (pool.stats.batches, pool.stats.batched, pool.stats.urgent) == (1, 3, 5)
    finally:
        pool.shutdown()


async def test_batching_off_decodes_one_by_one(decoder: GatedBatchDecoder) -> None:
    pool, first = await _busy_pool(decoder, batching=BatchPolicy(max_batch=1))
    try:
        queued = [pool.submit(_samples(n)) for n in (10, 11)]
        decoder.release.set()
        assert [(await f).text for f in (first, *queued)] == ["1", "10", "11"]
        assert decoder.calls == [["single 1"], ["single 10"], ["single 11"]]
    finally:
        pool.shutdown()


async def test_partials_other_languages_and_long_audio_are_not_batched(
    decoder: GatedBatchDecoder,
) -> None:
    pool, first = await _busy_pool(decoder)
    try:
        english = pool.submit(_samples(10), language="en")
        german = pool.submit(_samples(11), language="de")
        long = pool.submit(_samples(5000), language="en")
        english_too = pool.submit(_samples(12), language="en")
        decoder.release.set()
        await asyncio.gather(first, english, german, long, english_too)
        # Queue order is kept: a batch ends at the first decode that cannot join it.
        assert decoder.calls == [
            ["single 1"],
            ["single 10"],
            ["single 11"],
            ["single 5000"],
            ["single 12"],
        ]
    finally:
        pool.shutdown()


async def test_a_cancelled_decode_in_a_batch_fails_alone(decoder: GatedBatchDecoder) -> None:
    pool, first = await _busy_pool(decoder)
    try:
        cancel = threading.Event()
        kept = pool.submit(_samples(10))
        given_up = pool.submit(_samples(11), cancel)
        dropped = pool.submit(_samples(12))
        kept_too = pool.submit(_samples(13))
        cancel.set()
        dropped.cancel()  # nobody waits for it: it is left out of the batch
        decoder.release.set()
        await first
        assert (await kept).text == "10"
        assert (await kept_too).text == "13"
        with pytest.raises(DecodeCancelledError):
            await given_up
        # 10, 11 and 12 were collected (a batch of three); 12 was dropped before the decode.
        assert decoder.calls[1:] == [["10", "11"], ["single 13"]]
        assert pool.stats.cancelled == 1
    finally:
        pool.shutdown()


async def test_a_failing_decode_reaches_its_caller_and_the_others_go_on(
    decoder: GatedBatchDecoder,
) -> None:
    pool, first = await _busy_pool(decoder)
    try:
        broken, fine = pool.submit(_samples(666)), pool.submit(_samples(5))
        decoder.release.set()
        await first
        with pytest.raises(RuntimeError, match="broken"):
            await broken
        assert (await fine).text == "5"
        assert decoder.calls[1] == ["666", "5"]
    finally:
        pool.shutdown()
