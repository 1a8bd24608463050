"""normalize_for_speech: markdown, emoji and stray symbols removed or spoken."""

from __future__ import annotations

import pytest

from services.tts.normalize import normalize_for_speech

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("**bold** and *italic* text", "bold and italic text"),
        ("__strong__ and _emphasis_ here", "strong and emphasis here"),
        ("~~gone~~ still said", "gone still said"),
        ("# Title\n## Subtitle\nBody", "Title Subtitle Body"),
        ("- one\n* two\n+ three\n1. four\n2) five", "one two three four five"),
        ("> a quoted line", "a quoted line"),
        ("Run `make test` now", "Run make test now"),
        ("Before\n```python\nprint('x')\n```\nAfter", "Before After"),
        ("See [the docs](https://example.com/docs) now", "See the docs now"),
        ("Look: ![a cat](cat.png)", "Look: a cat"),
    ],
)
def test_markdown_is_removed_and_its_text_kept(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


def test_underscores_inside_words_are_not_emphasis() -> None:
    assert normalize_for_speech("call snake_case_name now") == "call snake case name now"
    assert normalize_for_speech("the __init__ method") == "the init method"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("Great job \U0001f389\U0001f44d", "Great job"),
        ("I \u2764\ufe0f it", "I it"),
        ("family \U0001f468\u200d\U0001f469\u200d\U0001f467", "family"),
        ("five stars \u2b50\u2b50", "five stars"),
        ("wake up \u23f0", "wake up"),
        ("flag \U0001f1fa\U0001f1f8", "flag"),
        ("thumbs \U0001f44d\U0001f3fd", "thumbs"),
        ("done \u2705", "done"),
        ("press 1\ufe0f\u20e3", "press 1"),
    ],
)
def test_emoji_are_dropped(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


def test_emoji_removal_keeps_surrounding_words() -> None:
    assert normalize_for_speech("Nice \u2b50 work \U0001f389 team") == "Nice work team"


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("salt & pepper", "salt and pepper"),
        ("50% off", "50 percent off"),
        ("1+1=2", "1 plus 1 equals 2"),
        ("me@example", "me at example"),
    ],
)
def test_symbols_with_a_spoken_form_are_spoken(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


def test_stray_symbols_are_dropped() -> None:
    assert normalize_for_speech("a | b <c> {d} [e] \\ ^ f ~ g # h") == "a b c d e f g h"


def test_whitespace_is_collapsed_and_trimmed() -> None:
    assert normalize_for_speech("  lots   of\n\n\tspace  ") == "lots of space"


def test_plain_speech_passes_through_unchanged() -> None:
    text = "It's 3.5 km, e.g. from 10:30 to noon. Really? Yes!"
    assert normalize_for_speech(text) == text


@pytest.mark.parametrize("text", ["", "   ", "\U0001f389", "**", "```code only```"])
def test_nothing_speakable_gives_empty_text(text: str) -> None:
    assert normalize_for_speech(text) == ""
