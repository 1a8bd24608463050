"""How complete the user's words read as a turn, from the embedded model's next-token odds.

The prompt is the conversation as the chat template writes it, up to and including the user's
text but not the end-of-message token that would close it (ChatML, the template of the embedded
Qwen model). The score is the probability that the next token closes the message: the
end-of-message token itself (special tokens render as empty text) or a sentence-ending mark
(".", "?", "!", not "..."). Whisper's final full stop (or "!", ",", "...") is taken off first:
it puts one after almost any fragment, so the model judges the words, not that guess. A final
question mark stays: it reflects how the words were said and ordered, and questions are what
users ask ("What time is it?" scores 0.75 with it and 0.16 without; "What's the" 0.000).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

# How many of the most likely next tokens llama.cpp reports (their mass is what is counted).
TOP_TOKENS = 20
_TRAILING_MARKS = re.compile(r"[\s.,;:!…]+$")
_CLOSING = re.compile(r"^[.?!]")


def strip_final_punctuation(text: str) -> str:
    """The text without its final marks, but for a question mark."""
    return _TRAILING_MARKS.sub("", text.strip())


def chatml_prefix(messages: Sequence[Mapping[str, Any]]) -> str:
    """The conversation (chat-completions messages) in ChatML, the last message left open.

    The messages are the ones the reply sends (the system prompt with its tools block), so
    the reply finds this prefix in the slot's cache."""
    parts = [
        f"<|im_start|>{m['role']}\n{m.get('content') or ''}<|im_end|>\n" for m in messages[:-1]
    ]
    last = messages[-1]
    parts.append(f"<|im_start|>{last['role']}\n{strip_final_punctuation(last['content'])}")
    return "".join(parts)


def closing_probability(result: Any) -> float:
    """The probability mass of closing tokens in a one-token completion's ``top_logprobs``."""
    try:
        top = result["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError) as error:
        raise ValueError(f"no token probabilities in the completion: {error}") from None
    total = 0.0
    for entry in top:
        token = str(entry.get("token", ""))
        if token == "" or (_CLOSING.match(token) and not token.startswith("...")):
            total += math.exp(float(entry["logprob"]))
    return min(total, 1.0)
