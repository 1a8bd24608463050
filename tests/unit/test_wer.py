"""Transcript normalisation (numbers spelt out) and word error rate."""

from __future__ import annotations

import pytest

from tools.wer import normalize_transcript, number_words, word_error_rate, word_errors

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("number", "words"),
    [
        (0, "zero"),
        (7, "seven"),
        (10, "ten"),
        (19, "nineteen"),
        (21, "twenty one"),
        (40, "forty"),
        (100, "one hundred"),
        (305, "three hundred five"),
        (1500, "one thousand five hundred"),
        (999_999, "nine hundred ninety nine thousand nine hundred ninety nine"),
    ],
)
def test_numbers_are_spelt_as_spoken(number: int, words: str) -> None:
    assert number_words(number) == words


def test_numbers_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        number_words(1_000_000)


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("10 of clubs.", "ten of clubs"),
        ("8 of spades, 4 of clubs, 7 of hearts.", "eight of spades four of clubs seven of hearts"),
        ("It costs $1,500.", "it costs one thousand five hundred"),
        ("Twenty-one, 21!", "twenty one twenty one"),
        ("What's the weather like?", "what's the weather like"),
        ("\u2018Quoted\u2019 'words' don\u2019t", "quoted words don't"),
        ("Agent 007 and 1234567", "agent 007 and 1234567"),
        ("  ", ""),
    ],
)
def test_normalisation(text: str, normalized: str) -> None:
    assert normalize_transcript(text) == normalized


def test_normalisation_is_idempotent() -> None:
    once = normalize_transcript("Today, only platforms 1 and 3 are used; 2,000 people.")
    assert normalize_transcript(once) == once


def test_ten_and_10_are_the_same_word() -> None:
    assert word_error_rate("go forward ten meters", "Go forward 10 meters.") == 0.0
    assert word_errors("ten of clubs", "10 of close") == (1, 3)


def test_word_error_rate_counts_substitutions_insertions_and_deletions() -> None:
    assert word_error_rate("a b c d", "a x c") == 0.5
    assert word_error_rate("", "") == 0.0
    assert word_error_rate("", "something") == 1.0
