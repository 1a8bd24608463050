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
    text = "It's 3.5 miles, say from 10:30 to noon, in 2024. Really? Yes!"
    assert normalize_for_speech(text) == text


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("It costs $5.", "It costs 5 dollars."),
        ("just $1", "just 1 dollar"),
        ("$5.50 each", "5 dollars 50 each"),
        ("$1.00 flat", "1 dollar flat"),
        ("only $0.99", "only 99 cents"),
        ("a $0.01 coin", "a 1 cent coin"),
        ("$1,200 a month", "1,200 dollars a month"),
        ("$2.5M raised", "2.5 million dollars raised"),
        ("$5 million", "5 million dollars"),
        ("$10k salary", "10 thousand dollars salary"),
        ("$3bn deal", "3 billion dollars deal"),
        ("\u20ac10 or \u00a33.20", "10 euros or 3 pounds 20"),
        ("\u00a30.50", "50 pence"),
        ("\u00a5500", "500 yen"),
        ("$5.5", "5.5 dollars"),
    ],
)
def test_money_is_said_amount_first(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("It is 25\u00b0C today.", "It is 25 degrees Celsius today."),
        ("-5 \u00b0F tonight", "-5 degrees Fahrenheit tonight"),
        ("1\u00b0C warmer", "1 degree Celsius warmer"),
        ("21.5\u00b0C inside", "21.5 degrees Celsius inside"),
        ("turn 90\u00b0 left", "turn 90 degrees left"),
    ],
)
def test_temperatures_and_degrees_are_spoken(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("a 5 km run", "a 5 kilometers run"),
        ("1 km away", "1 kilometer away"),
        ("1.5 km", "1.5 kilometers"),
        ("at 3 km/h", "at 3 kilometers per hour"),
        ("60 mph", "60 miles per hour"),
        ("2kg of flour", "2 kilograms of flour"),
        ("10 kWh", "10 kilowatt hours"),
        ("500 MB left", "500 megabytes left"),
        ("6 ft tall", "6 feet tall"),
        ("1 min", "1 minute"),
        ("5 mins", "5 minutes"),
        ("30 ms", "30 milliseconds"),
        ("2 hrs", "2 hours"),
    ],
)
def test_units_after_a_number_are_spoken(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


@pytest.mark.parametrize(
    ("text", "spoken"),
    [
        ("5-10 minutes", "5 to 10 minutes"),
        ("5\u201310 km", "5 to 10 kilometers"),
        ("1/2 cup", "one half cup"),
        ("open 24/7", "open twenty-four seven"),
        ("3x faster", "3 times faster"),
        ("~5 people", "about 5 people"),
        ("the #1 pick", "the number 1 pick"),
        ("e.g. a scarf", "for example a scarf"),
        ("E.g., this", "for example, this"),
        ("i.e. that one", "that is that one"),
        ("cats vs. dogs", "cats versus dogs"),
    ],
)
def test_ranges_fractions_and_abbreviations_are_spoken(text: str, spoken: str) -> None:
    assert normalize_for_speech(text) == spoken


@pytest.mark.parametrize(
    "text",
    [
        "on 2024-05-01",
        "call 555-1234",
        "dial 1-800-555",
        "a 1920x1080 screen",
        "version 2.0.1",
        "at 10:30",
        "1/10 of it",
        "my.email.km now",
        "5 m away",
    ],
)
def test_look_alikes_are_left_alone(text: str) -> None:
    assert normalize_for_speech(text) == text


@pytest.mark.parametrize("text", ["", "   ", "\U0001f389", "**", "```code only```"])
def test_nothing_speakable_gives_empty_text(text: str) -> None:
    assert normalize_for_speech(text) == ""
