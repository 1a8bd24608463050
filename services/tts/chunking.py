"""Cutting a stream of text deltas into speakable chunks as the text arrives.

The first chunk of a turn is short, a clause, so audio can start after a few words; the rest are
whole sentences. A cut is made only where the text already shows what follows (whitespace after
the punctuation), so "3.5", "e.g.", "Mr. Smith", "10:30" and "example.com/a.b" stay whole, and
a dotted abbreviation ("U.S.A.", "a.m.") does not end a sentence. When a chunk has to be cut at
its word limit, the cut moves a few words on rather than fall just after an abbreviation or an
initial ("Mr." | "Smith") or just after a number, whose unit or "a.m." may follow ("9" | "a.m.").
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "eg",
        "ie",
        "a.m",
        "p.m",
        "approx",
        "dept",
        "est",
        "fig",
        "inc",
        "ltd",
        "co",
        "mt",
        "u.s",
    }
)
_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)|\n")
_CLAUSE_END = re.compile(r"[,;:\u2014](?=\s)")
_WORD = re.compile(r"\S+(?=\s)")
_DOTTED = re.compile(r"(?:[a-z]\.)+[a-z]")
_NUMBER = re.compile(r"[$€£¥]?\d[\d,.:]*")
LONG_SENTENCE_WORDS = 40
# The first chunk ends at the first clause of this many words, or after the maximum: the
# defaults of TTS_FIRST_CHUNK_MIN_WORDS / _MAX_WORDS (.env.example says why 3).
FIRST_MIN_WORDS = 2
FIRST_MAX_WORDS = 3
# Clause-sized chunks until this many words are out (see SpeakableChunker).
OPENING_WORDS = 12
# How many words past its limit a cut may move to avoid splitting "Mr." from "Smith".
MAX_LIMIT_EXTENSION = 3


def _is_abbreviation(text: str, dot_index: int) -> bool:
    if text[dot_index] != ".":
        return False
    start = dot_index
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:dot_index].lower().lstrip("(\"'")
    if word in ABBREVIATIONS or _DOTTED.fullmatch(word):
        return True
    # A single initial ("J. Smith") is not the end of a sentence either.
    return len(word) == 1 and word.isalpha() and text[start].isupper()


def _sentence_cut(text: str) -> int | None:
    for match in _SENTENCE_END.finditer(text):
        if match.group() != "\n" and _is_abbreviation(text, match.start()):
            continue
        if text[: match.end()].strip():
            return match.end()
    return None


def _words_before(text: str, index: int) -> int:
    return len(_WORD.findall(text[:index] + " "))


def _binds_to_next(text: str, word: re.Match[str]) -> bool:
    """Whether a cut right after this word would split it from the next one."""
    if _NUMBER.fullmatch(word.group()):
        return True
    return word.group().endswith(".") and _is_abbreviation(text, word.end() - 1)


def _word_limit_cut(text: str, words: list[re.Match[str]], limit: int) -> int | None:
    """The cut at the word limit, a few words later where the limit splits a phrase."""
    for index in range(limit - 1, limit + MAX_LIMIT_EXTENSION):
        if index >= len(words):
            return None  # the deciding word is not complete yet
        if index == limit - 1 + MAX_LIMIT_EXTENSION or not _binds_to_next(text, words[index]):
            return words[index].end()
    return None


class SpeakableChunker:
    """Chunks for one turn.

    The first chunk ends at the first clause with ``first_min_words`` words, or after
    ``first_max_words``. Until ``opening_words`` words have been cut, later chunks may end at a
    clause too: after a very short first chunk ("Sure!") the next one must be ready before that
    one has played, and a whole long sentence would not be (the text is still arriving). From
    then on the audio ahead covers a whole sentence's text and synthesis, and chunks are whole
    sentences.
    """

    def __init__(
        self,
        first_min_words: int = FIRST_MIN_WORDS,
        first_max_words: int = FIRST_MAX_WORDS,
        opening_words: int = OPENING_WORDS,
    ) -> None:
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words
        self.opening_words = opening_words
        self._buffer = ""
        self._first = True
        self._words_out = 0

    def push(self, delta: str) -> list[str]:
        """Add a text delta; returns the chunks that are now complete."""
        self._buffer += delta
        chunks: list[str] = []
        while (cut := self._find_cut()) is not None:
            chunk, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:]
            if chunk:
                chunks.append(chunk)
                self._first = False
                self._words_out += len(chunk.split())
        return chunks

    def flush(self) -> list[str]:
        """No more text is coming: whatever is left is the last chunk."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _find_cut(self) -> int | None:
        # The earliest cut wins, so the chunks do not depend on how the text was split into
        # deltas: a stream sees each cut as soon as the whitespace after it arrives.
        text = self._buffer
        sentence = _sentence_cut(text)
        limit = self.first_max_words if self._first else LONG_SENTENCE_WORDS
        words = list(_WORD.finditer(text))
        word_limit = _word_limit_cut(text, words, limit)
        if self._first or self._words_out < self.opening_words:
            for match in _CLAUSE_END.finditer(text):
                if sentence is not None and match.start() > sentence:
                    break
                if word_limit is not None and match.end() > word_limit:
                    break
                if _words_before(text, match.end()) >= self.first_min_words:
                    return match.end()
        if sentence is not None and (word_limit is None or sentence <= word_limit):
            return sentence
        if word_limit is None:
            return None
        if not self._first:
            clauses = [m.end() for m in _CLAUSE_END.finditer(text, 0, word_limit)]
            if clauses:
                return clauses[-1]
        return word_limit
