"""Fair sharing of the embedded engine's slots: a bounded wait queue and prompt-cache affinity.

llama.cpp serves ``LLM_PARALLEL`` sequences at once, each in a slot with its own KV cache. The
pool hands slots out in arrival order (first come, first served, so no session starves), lets at
most ``LLM_QUEUE_LIMIT`` turns wait, and refuses the next one at once with
:class:`EngineBusyError`. A session gets back the slot that holds its conversation so far when
that slot is free, so its next prompt is read from the cache, not again.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.llm.engine import EngineBusyError

# Sessions remembered for affinity; the oldest are forgotten beyond this (a session that comes
# back after that just gets the least recently used slot, and llama.cpp's host-memory prompt
# cache may still restore its prefix).
MAX_REMEMBERED_SESSIONS = 10_000


class SlotPool:
    def __init__(self, size: int, queue_limit: int) -> None:
        if size < 1 or queue_limit < 0:
            raise ValueError("a slot pool needs at least one slot and a queue limit of 0 or more")
        self.size = size
        self.queue_limit = queue_limit
        self._free: set[int] = set(range(size))
        self._clock = itertools.count()
        self._last_used: dict[int, int] = {slot: next(self._clock) for slot in range(size)}
        self._home: OrderedDict[str, int] = OrderedDict()
        self._waiters: deque[tuple[str, asyncio.Future[int]]] = deque()

    @property
    def busy(self) -> int:
        return self.size - len(self._free)

    @property
    def waiting(self) -> int:
        return sum(1 for _, future in self._waiters if not future.done())

    def home_of(self, session_id: str) -> int | None:
        return self._home.get(session_id)

    @asynccontextmanager
    async def slot(self, session_id: str = "") -> AsyncIterator[int]:
        """Hold a slot for one generation; raises EngineBusyError when the queue is full."""
        slot = await self._acquire(session_id)
        try:
            yield slot
        finally:
            self._release(slot)

    async def _acquire(self, session_id: str) -> int:
        if self._free and not self.waiting:
            return self._take(session_id, self._pick(session_id))
        if self.waiting >= self.queue_limit:
            raise EngineBusyError(
                f"the language model is busy ({self.busy} generating, {self.waiting} waiting, "
                f"LLM_QUEUE_LIMIT={self.queue_limit}); try again shortly"
            )
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        entry = (session_id, future)
        self._waiters.append(entry)
        try:
            slot = await future
        except BaseException:
            if future.done() and not future.cancelled():
                # The slot was handed over just as the waiter gave up: pass it on.
                self._release(future.result())
            elif entry in self._waiters:
                self._waiters.remove(entry)
            raise
        return self._take(session_id, slot)

    def _pick(self, session_id: str) -> int:
        home = self._home.get(session_id)
        if home is not None and home in self._free:
            return home
        # The slot idle longest holds the prefix least likely to be wanted next.
        return min(self._free, key=self._last_used.__getitem__)

    def _take(self, session_id: str, slot: int) -> int:
        self._free.discard(slot)
        if session_id:
            self._home[session_id] = slot
            self._home.move_to_end(session_id)
            while len(self._home) > MAX_REMEMBERED_SESSIONS:
                self._home.popitem(last=False)
        return slot

    def _release(self, slot: int) -> None:
        self._last_used[slot] = next(self._clock)
        while self._waiters:
            _, future = self._waiters.popleft()
            if not future.done():
                # First come, first served: the longest waiter gets the slot.
                future.set_result(slot)
                return
        self._free.add(slot)
