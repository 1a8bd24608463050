"""Transcript normalisation: how two transcripts are compared, in the gateway and in tests.

Normalised text is lower case with punctuation removed except apostrophes inside words, the
form the speech corpus's ``transcript_normalized`` uses, and with whole numbers below a million
spelt out ("10" is "ten", "1,500" is "one thousand five hundred"), as the corpus writes them
and as Whisper often does not.
"""

from __future__ import annotations

import re

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}\b)")
_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SPELT_BELOW = 1_000_000


def number_words(number: int) -> str:
    """A whole number in [0, 1,000,000) spelt out the way it is spoken, without "and"."""
    if not 0 <= number < SPELT_BELOW:
        raise ValueError(f"{number} is outside [0, {SPELT_BELOW})")
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    thousands, rest = divmod(number, 1000)
    return f"{number_words(thousands)} thousand" + (f" {number_words(rest)}" if rest else "")


def _spell(word: str) -> str:
    if word.isdigit() and int(word) < SPELT_BELOW and not (len(word) > 1 and word[0] == "0"):
        return number_words(int(word))
    return word


def normalize_transcript(text: str) -> str:
    text = _THOUSANDS_SEPARATOR.sub("", text.lower().replace("\u2019", "'"))
    words = (_spell(word.strip("'")) for word in _NOT_WORD.sub(" ", text).split())
    return " ".join(word for word in words if word)
