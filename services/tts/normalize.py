"""Text cleaned for speech: markdown, emoji and stray symbols removed or spoken."""

from __future__ import annotations

import re

_MARKDOWN = [
    (re.compile(r"```.*?```", re.S), " "),
    (re.compile(r"`([^`]*)`"), r"\1"),
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"(\*\*|\*|~~)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    # Underscores mark emphasis only at word edges: snake_case_name is not emphasis.
    (re.compile(r"(?<!\w)(__|_)(?=\S)(.+?)(?<=\S)\1(?!\w)"), r"\2"),
    (re.compile(r"^\s{0,3}#{1,6}\s*", re.M), ""),
    (re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+", re.M), ""),
    (re.compile(r"^\s*>\s?", re.M), ""),
]
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u231a\u231b\u23e9-\u23fa\u20e3\ufe0f\u200d]+"
)
_SPOKEN = {"&": " and ", "%": " percent", "+": " plus ", "=": " equals ", "@": " at "}
_DROP = re.compile(r"[*#_~`|<>{}\[\]\\^]")


def normalize_for_speech(text: str) -> str:
    for pattern, replacement in _MARKDOWN:
        text = pattern.sub(replacement, text)
    text = _EMOJI.sub("", text)
    for symbol, spoken in _SPOKEN.items():
        text = text.replace(symbol, spoken)
    text = _DROP.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()
