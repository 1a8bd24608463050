"""SpeakableChunker: a short first clause, then whole sentences, never cut inside a token."""

from __future__ import annotations

import random

import pytest

from services.tts.chunking import (
    FIRST_MAX_WORDS,
    FIRST_MIN_WORDS,
    LONG_SENTENCE_WORDS,
    OPENING_WORDS,
    SpeakableChunker,
)
from services.tts.settings import TtsSettings

pytestmark = pytest.mark.unit

# A first chunk of 3 to 8 words, wider than the service's 2 to 3, so the rules of what follows
# show on short texts; a test that needs other limits says so.
WIDE = {"first_min_words": 3, "first_max_words": 8}


def chunker_with(**options: int) -> SpeakableChunker:
    return SpeakableChunker(**{**WIDE, **options})


def chunk_whole(text: str, **options: int) -> list[str]:
    chunker = chunker_with(**options)
    return chunker.push(text) + chunker.flush()


def chunk_pieces(pieces: list[str], **options: int) -> list[str]:
    chunker = chunker_with(**options)
    chunks: list[str] = []
    for piece in pieces:
        chunks += chunker.push(piece)
    return chunks + chunker.flush()


def words(count: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{index}" for index in range(count))


def test_first_chunk_is_a_short_clause_then_whole_sentences() -> None:
    text = (
        "Sure thing my friend, here is the plan, step by step. "
        "We start at noon, then we walk to the park. Bring water."
    )
    assert chunk_whole(text, opening_words=0) == [
        "Sure thing my friend,",
        "here is the plan, step by step.",
        "We start at noon, then we walk to the park.",
        "Bring water.",
    ]


def test_clauses_are_chunks_until_the_opening_words_are_out() -> None:
    text = (
        "Sure thing my friend, here is the plan, step by step. "
        "We start at noon, then we walk to the park. Bring water, and a hat."
    )
    assert chunk_whole(text) == [
        "Sure thing my friend,",
        "here is the plan,",
        "step by step.",
        "We start at noon,",  # 11 words were out before it: still the opening
        "then we walk to the park.",
        "Bring water, and a hat.",
    ]
    assert OPENING_WORDS == 12


def test_after_a_one_word_first_sentence_the_next_chunk_is_a_clause() -> None:
    text = "Sure! The weather in Paris today is mild, around 18 degrees, with a light breeze."
    assert chunk_whole(text, first_min_words=2, first_max_words=4) == [
        "Sure!",
        "The weather in Paris today is mild,",
        "around 18 degrees,",
        "with a light breeze.",
    ]


def test_a_clause_with_too_few_words_is_not_cut() -> None:
    assert chunk_whole("Well, it depends on the weather. Maybe.") == [
        "Well, it depends on the weather.",
        "Maybe.",
    ]


def test_first_min_words_is_configurable() -> None:
    assert chunk_whole("Well, it depends on the weather.", first_min_words=1) == [
        "Well,",
        "it depends on the weather.",
    ]


def test_first_chunk_is_capped_at_first_max_words() -> None:
    chunks = chunk_whole(words(12) + ".", first_max_words=5)
    assert chunks == [words(5), " ".join(f"w{i}" for i in range(5, 12)) + "."]


def test_later_sentences_are_capped_at_a_clause_before_the_long_limit() -> None:
    clause = words(30, "a") + ","
    rest = words(30, "b") + "."
    chunks = chunk_whole("Okay. " + clause + " " + rest)
    assert chunks[0] == "Okay."
    # The long sentence is cut at its last clause within the limit, not mid-clause.
    assert chunks[1] == clause
    assert chunks[2] == rest


def test_later_sentence_without_clause_is_cut_at_the_long_limit() -> None:
    chunks = chunk_whole("Okay. " + words(LONG_SENTENCE_WORDS + 5) + ".")
    assert chunks[1] == words(LONG_SENTENCE_WORDS)
    assert len(chunks) == 3


@pytest.mark.parametrize(
    ("sentence", "token"),
    [
        ("The price today is 3.5 dollars per pound.", "3.5"),
        ("Please say hello to Mr. Smith for me.", "Mr. Smith"),
        ("Bring something warm, e.g. a scarf or gloves.", "e.g. a scarf"),
        ("The train leaves at 10:30 from platform two.", "10:30"),
        ("You can read it at example.com/a.b whenever you like.", "example.com/a.b"),
        ("The letter was signed by J. Smith himself.", "J. Smith"),
        ("We met Dr. Jones at 9 a.m. on Monday.", "Dr. Jones at 9 a.m. on"),
        ("It ends in Wait... no, okay.", "Wait..."),
    ],
)
def test_never_cuts_inside_numbers_abbreviations_times_or_urls(sentence: str, token: str) -> None:
    text = f"{sentence} And that is all."
    for chunks in (chunk_whole(text), chunk_pieces(list(text))):
        assert any(token in chunk for chunk in chunks), chunks
        assert " ".join(chunks) == text
        assert chunks[-1] == "And that is all."


@pytest.mark.parametrize(
    ("text", "first"),
    [
        ("Say hi to Mr. Smith for me today.", "Say hi to Mr. Smith"),
        ("We meet at 9 a.m. on Monday.", "We meet at 9 a.m. on"),
        ("It costs about $3.50 per pound.", "It costs about $3.50 per"),
        ("Come by at 10:30 p.m. tonight.", "Come by at 10:30 p.m. tonight."),
        ("Run there in 5 km or less.", "Run there in 5 km"),
        ("Signed by J. R. Smith himself.", "Signed by J. R. Smith"),
        # The cut moves at most a few words past the limit.
        ("Ask Dr. Dr. Dr. Dr. Dr. Dr. Dr. Who now.", "Ask Dr. Dr. Dr. Dr. Dr. Dr."),
    ],
)
def test_the_word_limit_never_splits_a_title_or_a_number_from_what_follows(
    text: str, first: str
) -> None:
    chunks = chunk_whole(text, first_min_words=2, first_max_words=4)
    assert chunks[0] == first
    assert " ".join(chunks) == text
    assert chunk_pieces(list(text), first_min_words=2, first_max_words=4) == chunks


@pytest.mark.parametrize(
    "text",
    [
        "Say hi to the U.S.A. team for me.",
        "The U.K. is lovely in spring.",
        "He is a.k.a. the boss around here.",
    ],
)
def test_a_dotted_abbreviation_does_not_end_a_sentence(text: str) -> None:
    assert chunk_whole("Sure. " + text, first_max_words=20) == ["Sure.", text]


def test_a_sentence_end_is_cut_only_once_the_following_whitespace_arrives() -> None:
    chunker = chunker_with()
    assert chunker.push("The answer is 3.") == []
    # "3." might still become "3.5": no cut yet.
    assert chunker.push("5") == []
    assert chunker.push(" percent.") == []
    assert chunker.push(" Next") == ["The answer is 3.5 percent."]
    assert chunker.flush() == ["Next"]


def test_closing_quotes_and_brackets_stay_with_their_sentence() -> None:
    assert chunk_whole('He said "stop." Then (quietly.) he left.') == [
        'He said "stop."',
        "Then (quietly.)",
        "he left.",
    ]


def test_a_newline_ends_a_chunk() -> None:
    assert chunk_whole("First line here\nsecond line here\n") == [
        "First line here",
        "second line here",
    ]


def test_flush_returns_the_rest_once_and_empty_when_nothing_is_left() -> None:
    chunker = chunker_with()
    assert chunker.push("Hello there my dear friend. And then") == ["Hello there my dear friend."]
    assert chunker.flush() == ["And then"]
    assert chunker.flush() == []
    assert chunker_with().flush() == []
    whitespace_only = chunker_with()
    assert whitespace_only.push("   \n ") == []
    assert whitespace_only.flush() == []


def test_no_chunk_is_empty_or_padded() -> None:
    chunks = chunk_whole("  One two three.   \n\n  Four five six!  \n  Seven?   ")
    assert chunks == ["One two three.", "Four five six!", "Seven?"]


TEXTS = [
    "Sure, I can help with that. The price is 3.5 dollars today. Call Mr. Smith at 10:30 "
    "tomorrow. Visit example.com/a.b for details. See e.g. the manual first!",
    "Hello there my good friend, how are you doing today? I am fine. Thanks!",
    # The first sentence is longer than first_max_words: the cap must win in both modes.
    "The meeting is at 10:30 and it will be long. Okay.",
    "Read it, please; you will like it: it is good, really, truly, honestly good.",
    "Okay. " + words(50) + ", and then " + words(20) + ". Done.",
    'He said "stop." Then left.\nNext one? Yes! No... maybe',
]


@pytest.mark.parametrize("text", TEXTS)
def test_char_by_char_gives_the_same_chunks_as_whole(text: str) -> None:
    assert chunk_pieces(list(text)) == chunk_whole(text)


@pytest.mark.parametrize("text", TEXTS)
def test_random_deltas_give_the_same_chunks_as_whole(text: str) -> None:
    rng = random.Random(text)
    expected = chunk_whole(text)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(text)), rng.randint(1, min(15, len(text) - 1))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert chunk_pieces(pieces) == expected


def test_streaming_matches_whole_on_generated_text() -> None:
    vocab = [
        "word", "3.5", "Mr.", "e.g.", "10:30", "example.com/a.b", "hi,", "so;", "yes.", "no!",
        "why?", "\n", "J.", "ok:", "etc.", '"quoted."', "(paren.)", "the", "cat", "\u2014", "x...",
        "9", "a.m.", "$3.50", "U.S.A.", "Dr.", "5", "km",
    ]  # fmt: skip
    rng = random.Random(7)
    for _ in range(300):
        text = " ".join(rng.choice(vocab) for _ in range(rng.randint(1, 60)))
        options = {"first_min_words": rng.randint(1, 4), "first_max_words": rng.randint(4, 10)}
        assert chunk_pieces(list(text), **options) == chunk_whole(text, **options), text


def test_the_defaults_are_the_services_first_chunk_of_two_to_three_words() -> None:
    settings = TtsSettings.from_env({})
    limits = (settings.first_chunk_min_words, settings.first_chunk_max_words)
    assert limits == (FIRST_MIN_WORDS, FIRST_MAX_WORDS) == (2, 3)
    assert SpeakableChunker().push("Sure thing, here is the plan. ") == [
        "Sure thing,",
        "here is the plan.",
    ]
    assert SpeakableChunker().push("Well, here is the plan. ") == ["Well, here is", "the plan."]
