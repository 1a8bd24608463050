"""Transcript normalisation and word error rate, the same for tests and the benchmark.

Normalised text is lower case with punctuation removed except apostrophes inside words, the
form the speech corpus's ``transcript_normalized`` uses.
"""

from __future__ import annotations

import re

_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


def normalize_transcript(text: str) -> str:
    lowered = _NOT_WORD.sub(" ", text.lower().replace("\u2019", "'"))
    words = (word.strip("'") for word in lowered.split())
    return " ".join(word for word in words if word)


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, reference length) after normalising both."""
    ref = normalize_transcript(reference).split()
    hyp = normalize_transcript(hypothesis).split()
    previous = list(range(len(hyp) + 1))
    for i, ref_word in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, hyp_word in enumerate(hyp, 1):
            current[j] = min(
                previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref_word != hyp_word)
            )
        previous = current
    return previous[-1], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    errors, length = word_errors(reference, hypothesis)
    return errors / length if length else float(errors > 0)
