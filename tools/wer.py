"""Word error rate, the same for tests and the benchmark (normalisation: voice/text.py)."""

from __future__ import annotations

from voice.text import normalize_transcript, number_words

__all__ = ["normalize_transcript", "number_words", "word_error_rate", "word_errors"]


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
