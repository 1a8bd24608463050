"""A small cache of spoken phrases that recur ("Hello!", "One moment."), bounded in bytes.

Keyed by engine, voice, output rate and the normalised text of one chunk; the value is the
chunk's whole audio at the output rate, so a hit skips synthesis and resampling both. Least
recently used entries go first once the byte budget is spent. Only short chunks are kept:
long sentences rarely recur and would push the greetings out.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

from prometheus_client import Counter

MAX_CACHED_CHARS = 80
# Lookups of short chunks, by result: a benchmark reports how much of its audio came from here.
LOOKUPS = Counter("voice_tts_cache_lookups", "Phrase cache lookups of short chunks", ["result"])


class CacheKey(NamedTuple):
    engine: str
    voice: str
    sample_rate: int
    text: str


class AudioCache:
    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.size_bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[CacheKey, bytes] = OrderedDict()

    @staticmethod
    def wants(text: str) -> bool:
        """Whether a chunk is short enough to be worth keeping."""
        return 0 < len(text) <= MAX_CACHED_CHARS

    def get(self, key: CacheKey) -> bytes | None:
        pcm = self._entries.get(key)
        if pcm is None:
            self.misses += 1
            LOOKUPS.labels("miss").inc()
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        LOOKUPS.labels("hit").inc()
        return pcm

    def put(self, key: CacheKey, pcm: bytes) -> None:
        if not pcm or len(pcm) > self.budget_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.size_bytes -= len(old)
        self._entries[key] = pcm
        self.size_bytes += len(pcm)
        while self.size_bytes > self.budget_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size_bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._entries)
