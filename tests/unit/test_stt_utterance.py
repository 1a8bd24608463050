"""Utterance bookkeeping: local agreement, commits, and where a long stretch is cut."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from services.stt.engine import Decoding, Segment
from services.stt.utterance import DecodeJob, Utterance, common_word_prefix, join_text

pytestmark = pytest.mark.unit

WINDOW = 512


def _done(decoding: Decoding) -> asyncio.Future[Decoding]:
    future: asyncio.Future[Decoding] = asyncio.get_running_loop().create_future()
    future.set_result(decoding)
    return future


def _utterance(probabilities: list[float], origin: int = 1000) -> Utterance:
    utterance = Utterance("u1", origin)
    for i, probability in enumerate(probabilities):
        utterance.append(np.full(WINDOW, i, dtype=np.float32), probability)
    return utterance


def test_agreement_ignores_case_and_punctuation_and_stops_at_the_first_difference() -> None:
    agreed = common_word_prefix("And so, my fellow", "and so my fellow Americans")
    assert agreed == "and so my fellow"
    assert common_word_prefix("And so am I", "And so, my fellow") == "And so,"
    assert common_word_prefix("", "hello there") == ""


def test_join_text_skips_empty_sides() -> None:
    assert join_text("", "b") == "b"
    assert join_text("a", "") == "a"
    assert join_text("a.", "b") == "a. b"


def test_audio_is_addressed_in_stream_samples() -> None:
    utterance = _utterance([0.9, 0.9, 0.9])
    assert utterance.end == 1000 + 3 * WINDOW
    piece = utterance.audio(1000 + WINDOW, 1000 + 2 * WINDOW)
    assert len(piece) == WINDOW and set(piece.tolist()) == {1.0}


async def test_a_commit_moves_forward_only_from_the_committed_point() -> None:
    utterance = _utterance([0.9] * 10)
    first = DecodeJob(1000, 1000 + 5 * WINDOW, "", _done(Decoding("one")))
    assert utterance.commit(first, first.text(), first.end)
    assert (utterance.committed_text, utterance.committed_at) == ("one", first.end)
    # A decode that started before the commit cannot commit again.
    stale = DecodeJob(1000, 1000 + 8 * WINDOW, "", _done(Decoding("one two")))
    assert not utterance.commit(stale, stale.text(), stale.end)
    second = DecodeJob(first.end, 1000 + 8 * WINDOW, "one", _done(Decoding("two")))
    assert second.text() == "one two"
    assert utterance.commit(second, second.text(), second.end)
    assert utterance.committed_text == "one two"


async def test_stable_text_is_what_two_partials_agree_on_and_never_less_than_committed() -> None:
    utterance = _utterance([0.9] * 4)
    assert utterance.agree("ask not what", "") == ""
    assert utterance.agree("ask not what your country", "") == "ask not what"
    assert utterance.agree("ask what you", "") == "ask"
    # After a commit the committed words are stable whatever the previous partial said.
    assert utterance.agree("and so my fellow americans ask", "and so my fellow americans") == (
        "and so my fellow americans"
    )


def test_the_cut_goes_to_the_quietest_window_near_a_timestamp() -> None:
    probabilities = [0.9] * 20
    probabilities[12] = 0.05
    utterance = _utterance(probabilities, origin=0)
    # Asked near window 10: window 12 is quieter and within 0.2 s (6 windows).
    assert utterance.quiet_point(10 * WINDOW) == 13 * WINDOW
    # Too far away: the nearest of equally loud windows wins, cut at its end.
    assert utterance.quiet_point(2 * WINDOW) == 3 * WINDOW


async def test_agreed_segments_are_committed_only_past_the_rolling_window() -> None:
    seconds = 7.0
    windows = int(seconds * 16000) // WINDOW
    utterance = _utterance([0.9] * windows, origin=0)
    segments = (Segment(0.0, 3.0, "first part."), Segment(3.0, 6.9, "second part"))
    job = DecodeJob(0, utterance.end, "", _done(Decoding("first part. second part", segments)))
    # Not agreed yet: nothing is committed.
    assert not utterance.commit_agreed_segments(job, "first", rolling_window_s=6.0)
    # Shorter than the rolling window: nothing is committed.
    assert not utterance.commit_agreed_segments(job, "first part.", rolling_window_s=8.0)
    assert utterance.commit_agreed_segments(job, "first part. second", rolling_window_s=6.0)
    assert utterance.committed_text == "first part."
    assert abs(utterance.committed_at - 3.0 * 16000) <= 0.25 * 16000
