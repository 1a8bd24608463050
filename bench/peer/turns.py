"""A peer session's turn numbering (no Pipecat here: type-checked and unit-tested)."""

from __future__ import annotations

import uuid
from typing import Any


class TurnState:
    """One session's turn numbering, shared by its taps.

    A user turn is every final transcript since the agent last started answering; its id goes
    up by one at the first of them. The answer to it is the next TTS start, and it is complete
    when the bot stops speaking after the LLM has finished the reply (a reply of several
    sentences may stop speaking between them).
    """

    def __init__(self, input_sample_rate: int, output_sample_rate: int) -> None:
        self.session_id = uuid.uuid4().hex
        self.input_sample_rate = input_sample_rate
        self.output_sample_rate = output_sample_rate
        self.turn = 0
        self.awaiting_answer = False
        self.answering: int | None = None
        self.reply_done = False

    def ready(self) -> dict[str, Any]:
        return {
            "type": "ready",
            "session_id": self.session_id,
            "sample_rate": self.input_sample_rate,
            "output_sample_rate": self.output_sample_rate,
            "codec": "pcm16",
        }

    def on_transcript(self) -> int:
        if not self.awaiting_answer:
            self.turn += 1
            self.awaiting_answer = True
        return self.turn

    def on_tts_started(self) -> int | None:
        """The turn this TTS start answers, or None when it continues an answer."""
        if not self.awaiting_answer:
            return None
        self.awaiting_answer = False
        self.answering = self.turn
        return self.turn

    def on_reply_started(self) -> None:
        self.reply_done = False

    def on_reply_ended(self) -> None:
        self.reply_done = True

    def on_bot_stopped(self) -> int | None:
        """The turn that is now complete, if any."""
        if self.answering is None or not self.reply_done:
            return None
        turn, self.answering = self.answering, None
        return turn
