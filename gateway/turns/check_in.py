"""Checking in when the user goes quiet: the agent asks once whether they are still there.

After ``after_s`` of silence once the agent has finished speaking, the agent speaks ``text``
(through tts, as a reply of its own: the client gets ``check_in`` and the reply's events); after
a second silence as long, ``then`` ``end`` ends the session (``call_ended``, reason
``no_response``) or ``keep`` keeps it waiting. Any speech of the user starts over. The llm is
not asked and is not told (its protocol takes no agent words of the gateway's own). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.timeline import Timeline
from gateway.turns import actions as act
from gateway.turns.reply import Reply

CHECK_IN = "check_in"
DEFAULT_CHECK_IN_TEXT = "Are you still there?"


@dataclass(frozen=True)
class CheckIn:
    after_s: float = 0.0  # 0: never
    text: str = DEFAULT_CHECK_IN_TEXT
    then: str = "keep"  # or "end"


class CheckInSteps:
    """Mixed into the turn machine, which owns the state these steps use."""

    reply: Reply | None
    _now: float
    _attempts: int
    _turns: int
    _check_ins: int = 0

    def _emit(self, action: act.Action) -> None:
        raise NotImplementedError

    def _set_timer(self, kind: str, at: float) -> None:
        raise NotImplementedError

    def _cancel_timer(self, kind: str) -> None:
        raise NotImplementedError

    def _check_in_policy(self) -> CheckIn:
        raise NotImplementedError

    def _session_id(self) -> str:
        raise NotImplementedError

    def _quiet_started(self) -> None:
        """The agent finished speaking and the user is quiet: the silence is timed."""
        policy = self._check_in_policy()
        if policy.after_s > 0 and self._check_ins < 2:
            self._set_timer(CHECK_IN, self._now + policy.after_s)

    def _user_spoke(self) -> None:
        self._check_ins = 0
        self._cancel_timer(CHECK_IN)

    def _check_in_due(self) -> None:
        policy, sid = self._check_in_policy(), self._session_id()
        if self.reply is not None and not self.reply.finished:
            return
        self._check_ins += 1
        if self._check_ins == 1:
            self._speak_check_in(policy, sid)
        elif policy.then == "end":
            ended = {"turn_id": f"{sid}-{self._turns}", "reason": "no_response"}
            self._emit(act.SendEvent("call_ended", ended))
            self._emit(act.EndSession("the user did not answer the check-in", self._now))

    def _speak_check_in(self, policy: CheckIn, sid: str) -> None:
        self._attempts += 1
        reply = Reply(
            attempt=f"{sid}-a{self._attempts}",
            turn_id=f"{sid}-check-in-{self._attempts}",
            number=self._turns,
            text="",
            utterance_id="",
            timeline=Timeline(self._now),
            early=False,
            serial=False,
            reply_text=policy.text,
            llm_done=True,
            check_in=True,
        )
        self.reply = reply
        number, now = reply.number, self._now
        started = act.ReplyStarted(reply.attempt, reply.turn_id, number, False, False, now)
        self._emit(started)
        self._emit(act.SendEvent("check_in", {"turn_id": reply.turn_id, "text": policy.text}))
        self._emit(act.SendEvent("agent_text", {"turn_id": reply.turn_id, "text": policy.text}))
        self._emit(act.Speak(reply.attempt, policy.text))
        self._emit(act.FlushSpeech(reply.attempt))
