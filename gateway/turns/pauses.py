"""Ending the user's turn at a pause: the words decoded there, scored complete, end it after a
short silence instead of the long one (the ``punctuation`` and ``semantic`` rules).

Part of the turn machine (gateway/turns/machine.py), which owns the state these steps use. Pure:
the time is ``self._now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.turns import events as ev
from gateway.turns.barge_in import BARGE_IN
from gateway.turns.policy import TurnPolicy
from gateway.turns.replies import State
from gateway.turns.reply import Reply

# The short silence after a pause whose words were scored complete (``EndOfTurn``).
END_OF_TURN = "end_of_turn"


@dataclass
class PauseDecision:
    """The words decoded at a pause, waiting for the language model's end-of-turn score (the
    early reply ``attempt`` carries the request), or for the short silence to run out."""

    attempt: str
    event: ev.TranscriptReceived
    text: str
    score: float | None = None


class PauseSteps:
    """Mixed into the turn machine."""

    policy: TurnPolicy
    reply: Reply | None
    _now: float
    _pause: PauseDecision | None
    _decided_utterance: str | None
    _decided_text: str
    _overlapping: str | None
    _end_of_turn_at: float | None
    _end_reason: tuple[str, float | None]

    @property
    def next_turn_id(self) -> str:
        raise NotImplementedError

    def _set_timer(self, kind: str, at: float) -> None:
        raise NotImplementedError

    def _cancel_timer(self, kind: str) -> None:
        raise NotImplementedError

    def _set_state(self, state: State) -> None:
        raise NotImplementedError

    def _event(self, kind: str, **fields: Any) -> None:
        raise NotImplementedError

    def _confirm_early(self, reply: Reply) -> None:
        raise NotImplementedError

    def _discard_early_reply(self) -> None:
        raise NotImplementedError

    def _start_reply(
        self, event: ev.TranscriptReceived, *, early: bool, score_end: bool = False
    ) -> bool:
        raise NotImplementedError

    def _end_scored(self, event: ev.EndScored) -> None:
        """The model's score for the words at the pause: the turn ends after the short silence
        when they read as complete, or waits for the long one."""
        pause = self._pause
        if pause is None or pause.attempt != event.attempt:
            return
        complete, pause.score = self.policy.end_of_turn.decide(
            pause.text, event.p_end if event.available else None
        )
        if not complete:
            return
        due = pause.event.speech_end_at + self.policy.end_of_turn.short_silence_s
        if due <= self._now:
            self._end_paused()
        else:
            self._set_timer(END_OF_TURN, due)

    def _end_paused(self) -> None:
        pause, self._pause = self._pause, None
        if pause is not None and pause.score is not None:
            self._end_at_pause(pause.event, pause.text, pause.score)

    def _forget_pause(self) -> None:
        self._pause = None
        self._cancel_timer(END_OF_TURN)

    def _end_at_pause(self, event: ev.TranscriptReceived, text: str, score: float) -> None:
        """The words at the pause are a complete turn: it ends now, not after the long silence.

        The client gets the pause's text as the turn's final transcript; stt's own end of turn
        and final for this utterance are then dropped (unless the user goes on).
        """
        self._event("transcript", text=event.text, final=True, turn_id=self.next_turn_id)
        self._decided_utterance, self._decided_text = event.utterance_id, text
        self._overlapping = None
        self._cancel_timer(BARGE_IN)
        self._end_of_turn_at = self._now
        self._end_reason = ("complete", score)
        reply = self.reply
        if reply is not None and reply.early and reply.is_held:
            if self.policy.early_thinking.confirms(reply.text, text):
                self._confirm_early(reply)
                return
            self._discard_early_reply()
        if self._start_reply(event, early=False):
            self._set_state(State.THINKING)
