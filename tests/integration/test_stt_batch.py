"""Batched Whisper decodes (tiny.en) on the real speech corpus give the one-by-one texts."""

from __future__ import annotations

import asyncio
import threading
import wave

import numpy as np
import pytest

from services.stt.batcher import BatchPolicy, DecodeRequest
from services.stt.engine import DecodeCancelledError, Decoding
from services.stt.pool import DecodePool
from services.stt.settings import SttSettings
from services.stt.whisper import WhisperDecoder
from tests.conftest import Clip, clip_named

pytestmark = pytest.mark.model

RATE = 16000


def read(clip: Clip) -> np.ndarray:
    with wave.open(str(clip.path)) as handle:
        assert handle.getframerate() == RATE and handle.getnchannels() == 1
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
    return pcm.astype(np.float32) / 32768


@pytest.fixture(scope="module")
def decoder() -> WhisperDecoder:
    return WhisperDecoder(SttSettings.from_env({"STT_MAX_BATCH": "3"}), workers=1)


def _texts(outcomes: list[Decoding | BaseException]) -> list[str]:
    assert all(isinstance(o, Decoding) for o in outcomes), outcomes
    return [o.text for o in outcomes if isinstance(o, Decoding)]


def test_every_short_clip_decodes_in_batches_of_three_as_one_by_one(
    decoder: WhisperDecoder, speech_clips: list[Clip]
) -> None:
    clips = [clip for clip in speech_clips if decoder.batchable(read(clip))]
    assert len(clips) >= 6, "the corpus should hold short clips"
    assert any(not clip.kind.startswith("speech") for clip in clips)  # silence, noise too
    for start in range(0, len(clips), 3):
        group = [read(clip) for clip in clips[start : start + 3]]
        one_by_one = [decoder.decode(samples).text for samples in group]
        batched = _texts(decoder.decode_batch([DecodeRequest(samples) for samples in group]))
        assert batched == one_by_one
    spoken = [c for c in clips if c.kind == "speech"]
    assert all(decoder.decode(read(c)).text for c in spoken[:3])  # the texts are not all empty


def test_a_clip_too_long_for_the_short_window_is_decoded_alone(
    decoder: WhisperDecoder, speech_clips: list[Clip]
) -> None:
    long = read(clip_named(speech_clips, "001_"))  # 11 s: the standard 30 s path
    short = read(clip_named(speech_clips, "006_"))
    assert not decoder.batchable(long)
    outcomes = decoder.decode_batch([DecodeRequest(long), DecodeRequest(short)])
    assert _texts(outcomes) == [decoder.decode(long).text, decoder.decode(short).text]
    assert "ask not what your country" in _texts(outcomes)[0]


def test_a_cancelled_decode_leaves_the_rest_of_its_batch(
    decoder: WhisperDecoder, speech_clips: list[Clip]
) -> None:
    group = [read(clip_named(speech_clips, p)) for p in ("002_", "003_", "006_")]
    cancel = threading.Event()
    cancel.set()
    outcomes = decoder.decode_batch(
        [DecodeRequest(group[0]), DecodeRequest(group[1], cancel), DecodeRequest(group[2])]
    )
    assert isinstance(outcomes[1], DecodeCancelledError)
    kept = [o for i, o in enumerate(outcomes) if i != 1]
    assert _texts(kept) == [decoder.decode(group[0]).text, decoder.decode(group[2]).text]


async def test_streams_due_together_share_a_batch_in_the_pool(
    decoder: WhisperDecoder, speech_clips: list[Clip]
) -> None:
    group = [read(clip_named(speech_clips, p)) for p in ("010_", "012_", "036_")]
    expected = [decoder.decode(samples).text for samples in group]
    # One worker and a long window: the three submitted together are taken as one batch.
    pool = DecodePool(decoder, workers=1, batching=BatchPolicy(max_batch=3, window_s=30.0))
    try:
        futures = [pool.submit(samples) for samples in group]
        texts = [decoding.text for decoding in await asyncio.gather(*futures)]
    finally:
        pool.shutdown()
    assert texts == expected
    assert (pool.stats.batches, pool.stats.batched) == (1, 3)
