"""A bounded pool of decode workers shared by every stream, with latency-critical work first.

Two kinds of decode share one loaded model:

- **urgent** ones (the decode at a pause, the final transcript) are on the turn's critical path:
  they queue in order and are taken before anything else;
- **partial** ones only refresh the live transcript: one is accepted only while at least
  ``reserve`` workers would stay idle, so a partial never takes the last free worker and an
  urgent decode never waits behind partials. A partial that cannot be accepted is skipped;
  the stream tries again at its next interval.

The queue is bounded by its callers: each stream has at most one urgent decode queued
(the servicer bounds the streams), and partials are never queued.

When the decoder batches (``STT_MAX_BATCH`` above 1, ``services/stt/batcher.py``), a worker
that takes an urgent decode takes the urgent decodes queued behind it too and runs them as one
batch; a batch occupies one worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from services.stt.batcher import BatchCollector, BatchDecoder, BatchPolicy, DecodeRequest
from services.stt.engine import DecodeCancelledError, Decoder, Decoding, LanguageDecoder

log = logging.getLogger(__name__)

URGENT, PARTIAL, STOP = 0, 1, 2


@dataclass
class _Job:
    priority: int
    sequence: int
    samples: np.ndarray = field(compare=False)
    cancel: threading.Event = field(compare=False)
    future: asyncio.Future[Decoding] = field(compare=False)
    loop: asyncio.AbstractEventLoop = field(compare=False)
    # The stream's language ("" for the decoder's default); only a LanguageDecoder is told.
    language: str = field(default="", compare=False)


@dataclass
class PoolStats:
    """Counters for the benchmark and logs: decodes run, and the seconds workers spent on them."""

    urgent: int = 0
    partial: int = 0
    partial_skipped: int = 0
    cancelled: int = 0
    busy_s: float = 0.0
    partial_busy_s: float = 0.0
    # Batches of more than one urgent decode, and the decodes they held.
    batches: int = 0
    batched: int = 0


class DecodePool:
    def __init__(
        self,
        decoder: Decoder,
        workers: int = 2,
        reserve: int = 1,
        batching: BatchPolicy | None = None,
    ) -> None:
        """``batching``: how urgent decodes share a batch; by default the decoder's own
        ``batch_policy`` (a :class:`BatchDecoder`), else none."""
        if workers < 1:
            raise ValueError("a decode pool needs at least one worker")
        self._decoder = decoder
        self._language_decoder = decoder if isinstance(decoder, LanguageDecoder) else None
        self._batch_decoder = decoder if isinstance(decoder, BatchDecoder) else None
        if batching is None and self._batch_decoder is not None:
            batching = self._batch_decoder.batch_policy
        self._collector: BatchCollector[_Job] | None = None
        if self._batch_decoder is not None and batching is not None and batching.enabled:
            self._collector = BatchCollector(batching, self._joins)
        self._workers = workers
        self._reserve = min(reserve, workers - 1)
        self._queue: queue.PriorityQueue[tuple[int, int, _Job | None]] = queue.PriorityQueue()
        self._sequence = itertools.count()
        self._lock = threading.Lock()
        self._busy = 0
        self._queued = 0
        self._closed = False
        self.stats = PoolStats()
        self._threads = [
            threading.Thread(target=self._work, name=f"decode-{i}", daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def workers(self) -> int:
        return self._workers

    @property
    def queued(self) -> int:
        """Decodes waiting for a worker (the load report's queue depth)."""
        return self._queued

    def submit(
        self, samples: np.ndarray, cancel: threading.Event | None = None, language: str = ""
    ) -> asyncio.Future[Decoding]:
        """Queue an urgent decode; it starts as soon as a worker is free."""
        future = self._enqueue(URGENT, samples, cancel or threading.Event(), language)
        assert future is not None
        return future

    def try_partial(
        self, samples: np.ndarray, cancel: threading.Event, language: str = ""
    ) -> asyncio.Future[Decoding] | None:
        """Start a partial decode only if a worker is free beyond the reserve; else None."""
        return self._enqueue(PARTIAL, samples, cancel, language)

    def _enqueue(
        self, priority: int, samples: np.ndarray, cancel: threading.Event, language: str
    ) -> asyncio.Future[Decoding] | None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Decoding] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the decode pool is shut down")
            if priority == PARTIAL:
                idle = self._workers - self._busy - self._queued
                if idle <= self._reserve:
                    self.stats.partial_skipped += 1
                    return None
            self._queued += 1
        sequence = next(self._sequence)
        job = _Job(priority, sequence, samples, cancel, future, loop, language)
        self._queue.put((priority, sequence, job))
        return future

    def _work(self) -> None:
        while True:
            _, _, job = self._queue.get()
            if job is None:
                return
            jobs = [job]
            if self._collector is not None and self._batchable(job):
                jobs = self._collector.collect(job, self._queue)
            with self._lock:
                self._queued -= len(jobs)
                self._busy += 1
            try:
                if len(jobs) == 1:
                    self._run(job)
                else:
                    self._run_batch(jobs)
            finally:
                with self._lock:
                    self._busy -= 1

    def _run(self, job: _Job) -> None:
        if job.future.cancelled():
            return
        started = time.perf_counter()
        outcome: Decoding | BaseException
        try:
            if job.cancel.is_set():
                raise DecodeCancelledError
            if job.language and self._language_decoder is not None:
                outcome = self._language_decoder.decode(job.samples, job.cancel, job.language)
            else:
                outcome = self._decoder.decode(job.samples, job.cancel)
        except DecodeCancelledError as error:
            outcome = error
        except Exception as error:  # handed to the stream, which logs it
            outcome = error
        used = time.perf_counter() - started
        with self._lock:
            self.stats.busy_s += used
            if isinstance(outcome, DecodeCancelledError):
                self.stats.cancelled += 1
            elif job.priority == PARTIAL:
                self.stats.partial += 1
                self.stats.partial_busy_s += used
            else:
                self.stats.urgent += 1
        # A closed loop means nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            job.loop.call_soon_threadsafe(_settle, job.future, outcome)

    def _batchable(self, job: _Job) -> bool:
        decoder = self._batch_decoder
        return job.priority == URGENT and decoder is not None and decoder.batchable(job.samples)

    def _joins(self, first: _Job, job: _Job) -> bool:
        return job.language == first.language and self._batchable(job)

    def _run_batch(self, jobs: list[_Job]) -> None:
        assert self._batch_decoder is not None
        jobs = [job for job in jobs if not job.future.cancelled()]
        if not jobs:
            return
        started = time.perf_counter()
        requests = [DecodeRequest(job.samples, job.cancel, job.language) for job in jobs]
        outcomes: list[Decoding | BaseException]
        try:
            outcomes = self._batch_decoder.decode_batch(requests)
        except Exception as error:  # handed to every stream, which logs it
            outcomes = [error] * len(jobs)
        used = time.perf_counter() - started
        with self._lock:
            self.stats.busy_s += used
            self.stats.batches += 1
            self.stats.batched += len(jobs)
            for outcome in outcomes:
                if isinstance(outcome, DecodeCancelledError):
                    self.stats.cancelled += 1
                else:
                    self.stats.urgent += 1
        for job, outcome in zip(jobs, outcomes, strict=True):
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(_settle, job.future, outcome)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
        for _ in self._threads:
            self._queue.put((STOP, next(self._sequence), None))


def _settle(future: asyncio.Future[Decoding], outcome: Decoding | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
