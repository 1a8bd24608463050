"""AudioCache: recurring phrases kept within a byte budget, least recently used first out."""

from __future__ import annotations

import pytest

from services.tts.cache import MAX_CACHED_CHARS, AudioCache, CacheKey

pytestmark = pytest.mark.unit


def key(text: str, *, voice: str = "", rate: int = 24000, engine: str = "piper") -> CacheKey:
    return CacheKey(engine, voice, rate, text)


def test_a_phrase_comes_back_and_counts_hits_and_misses() -> None:
    cache = AudioCache(1000)
    assert cache.get(key("Hello there.")) is None
    cache.put(key("Hello there."), b"\x01\x00" * 10)
    assert cache.get(key("Hello there.")) == b"\x01\x00" * 10
    assert (cache.hits, cache.misses) == (1, 1)


def test_the_key_is_text_voice_rate_and_engine() -> None:
    cache = AudioCache(1000)
    cache.put(key("One moment."), b"ab")
    assert cache.get(key("One moment.", rate=16000)) is None
    assert cache.get(key("One moment.", voice="en-GB-SoniaNeural")) is None
    assert cache.get(key("One moment.", engine="edge")) is None
    assert cache.get(key("One moment!")) is None
    assert cache.get(key("One moment.")) == b"ab"


def test_least_recently_used_goes_first_when_the_budget_is_spent() -> None:
    cache = AudioCache(30)
    cache.put(key("a"), b"x" * 10)
    cache.put(key("b"), b"x" * 10)
    cache.put(key("c"), b"x" * 10)
    assert cache.get(key("a")) is not None  # a is now the most recent
    cache.put(key("d"), b"x" * 10)
    assert cache.get(key("b")) is None
    assert [cache.get(key(k)) is not None for k in "acd"] == [True, True, True]
    assert cache.size_bytes == 30 and len(cache) == 3


def test_one_large_entry_evicts_as_many_as_needed() -> None:
    cache = AudioCache(100)
    for name in "abcde":
        cache.put(key(name), b"x" * 20)
    cache.put(key("big"), b"x" * 90)
    assert len(cache) == 1 and cache.size_bytes == 90


def test_audio_larger_than_the_budget_or_empty_is_not_kept() -> None:
    cache = AudioCache(10)
    cache.put(key("a"), b"x" * 4)
    cache.put(key("huge"), b"x" * 11)
    cache.put(key("empty"), b"")
    assert cache.get(key("huge")) is None and cache.get(key("empty")) is None
    assert cache.get(key("a")) == b"x" * 4


def test_putting_a_key_again_replaces_it_and_its_size() -> None:
    cache = AudioCache(100)
    cache.put(key("a"), b"x" * 40)
    cache.put(key("a"), b"y" * 10)
    assert cache.size_bytes == 10 and cache.get(key("a")) == b"y" * 10


def test_only_short_phrases_are_wanted() -> None:
    assert AudioCache.wants("Hello! How can I help?")
    assert AudioCache.wants("x" * MAX_CACHED_CHARS)
    assert not AudioCache.wants("x" * (MAX_CACHED_CHARS + 1))
    assert not AudioCache.wants("")
