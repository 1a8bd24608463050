"""Urgent decodes of several streams, due at the same moment, run as one model batch.

CTranslate2 runs Whisper's encoder and decoder over a batch of mel features in one call. On a
GPU a batch of N costs little more than one decode, so N streams' pause or final decodes that
are due together finish sooner as one batch than one after another. On a small CPU the encoder
already keeps every core busy and a batch of N costs about N decodes (``make bench-stt-batch``,
docs/benchmarks.md), so batching is off by default there.

With ``STT_MAX_BATCH`` above 1, a decode worker that takes an urgent decode also takes the
urgent decodes already waiting behind it (same language, up to ``STT_MAX_BATCH`` in all), and,
with ``STT_BATCH_WINDOW_MS`` above 0, waits that long at most for more to arrive. With a window
of 0 a decode that finds nobody waiting starts at once, exactly as without batching; decodes
only share a batch when they would otherwise have queued.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from services.stt.engine import Decoding


@dataclass(frozen=True)
class DecodeRequest:
    """One decode of a batch: what a decoder's ``decode`` takes."""

    samples: np.ndarray
    cancel: threading.Event | None = None
    language: str = ""


@dataclass(frozen=True)
class BatchPolicy:
    """How many urgent decodes may share a batch, and how long to wait for more (seconds)."""

    max_batch: int = 1
    window_s: float = 0.0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("a batch holds at least one decode")
        if self.window_s < 0:
            raise ValueError("the batch window cannot be negative")

    @property
    def enabled(self) -> bool:
        return self.max_batch > 1


@runtime_checkable
class BatchDecoder(Protocol):
    """A decoder that can run several decodes as one batch. Blocking: call it from a worker.

    ``decode_batch`` gives one outcome per request, in order: its :class:`Decoding`, or the
    exception its own decode would have raised (``DecodeCancelledError`` for a cancelled one).
    ``batchable`` says whether a decode of these samples can share a batch at all.
    """

    batch_policy: BatchPolicy

    def batchable(self, samples: np.ndarray) -> bool: ...

    def decode_batch(self, requests: Sequence[DecodeRequest]) -> list[Decoding | BaseException]: ...


Item = TypeVar("Item")


class BatchCollector(Generic[Item]):
    """Takes, from a worker queue of ``(priority, sequence, item)``, what joins a first item.

    ``joins(first, item)`` says whether ``item`` may share ``first``'s batch; an entry that may
    not (another priority, another language, a stop marker: ``None``) goes back to the queue,
    where its place (priority, sequence) is kept, and collecting ends there.
    """

    def __init__(
        self,
        policy: BatchPolicy,
        joins: Callable[[Item, Item], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._joins = joins
        self._clock = clock

    def collect(
        self, first: Item, source: queue.PriorityQueue[tuple[int, int, Item | None]]
    ) -> list[Item]:
        batch = [first]
        deadline = self._clock() + self._policy.window_s
        while len(batch) < self._policy.max_batch:
            wait_s = deadline - self._clock()
            try:
                entry = source.get(block=wait_s > 0, timeout=wait_s if wait_s > 0 else None)
            except queue.Empty:
                break
            item = entry[2]
            if item is None or not self._joins(first, item):
                source.put(entry)
                break
            batch.append(item)
        return batch
