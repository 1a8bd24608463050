"""The turn machine: the session's turn taking as a pure object (see docs/gateway.md).

```
              speech_started                final transcript
  LISTENING ─────────────────▶ USER_SPEAKING ─────────────────▶ THINKING
      ▲                          │  ▲   (early reply held from the pause)   │ first audio sent
      │ playback over            │  └──────────────── barge-in ◀──┐        ▼
      └──────────────────────────┴──────────────────────────── AGENT_SPEAKING
        (playback over: also from THINKING, after a reply that failed or had no audio)
```

``step(event, now)`` takes one event (gateway/turns/events.py) with the time it happened and
returns the actions to carry out, in order (gateway/turns/actions.py). The policies
(gateway/turns/policy.py) decide early thinking, barge-in and the streaming or serial style.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.timeline import Timeline
from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.barge_in import BARGE_IN, OVERLAP_QUIET, BargeIn, BargeInSteps
from gateway.turns.check_in import CHECK_IN, CheckIn, CheckInSteps
from gateway.turns.pauses import END_OF_TURN, PauseDecision, PauseSteps
from gateway.turns.playout import PLAYOUT, Playout
from gateway.turns.policy import TurnPolicy
from gateway.turns.replies import LLM_QUIET, PLAYBACK_OVER, TTS_QUIET, ReplySteps, State
from gateway.turns.reply import Reply
from gateway.turns.timers import Timers

__all__ = ["State", "TurnMachine"]


class TurnMachine(ReplySteps, PauseSteps, BargeInSteps, CheckInSteps):
    def __init__(self, policy: TurnPolicy) -> None:
        self.policy = policy
        self.state = State.LISTENING
        self.reply: Reply | None = None
        self._turns = 0
        self._attempts = 0
        self._end_of_turn_at: float | None = None
        # Why the turn ended (the policy's reason and score), for the event, trace and waterfall.
        self._end_reason: tuple[str, float | None] = ("silence", None)
        # The utterance the machine ended itself (at a pause): stt's own end for it is old news.
        self._decided_utterance: str | None = None
        self._decided_text = ""
        # A pause being decided by the semantic rule (its score, then its short silence).
        self._pause: PauseDecision | None = None
        # The utterance that began while the agent was busy (a barge-in, if it lasts).
        self._overlapping: str | None = None
        self._timers = Timers()
        self._down: set[str] = set()
        self._out: list[act.Action] = []
        self._now = 0.0
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.SpeechStarted: self._speech_started,
            ev.SpeechPaused: lambda _e: self._overlap_paused(),
            ev.UserTurnEnded: self._user_turn_ended,
            ev.TranscriptReceived: self._transcript,
            ev.ReplyText: self._reply_text,
            ev.EndScored: self._end_scored,
            ev.ReplyDone: self._reply_done,
            ev.ToolCalled: self._tool_called,
            ev.ToolFinished: self._tool_finished,
            ev.SpeechAudioStarted: self._audio_started,
            ev.SpeechAudio: self._audio,
            ev.SpeechAudioEnded: self._audio_ended,
            ev.TimerExpired: self._timer_expired,
            ev.StageDown: self._stage_down,
            ev.StageUp: lambda e: self._down.discard(e.stage),
            ev.SpeechForgotten: self._speech_forgotten,
            ev.PlaybackReported: self._playback_reported,
            ev.SessionClosed: self._closed,
            ev.ReplyBroke: self._reply_broke,
        }

    @property
    def next_turn_id(self) -> str:
        return f"{self.policy.session_id}-{self._turns + 1}"

    @property
    def busy(self) -> bool:
        """Whether a reply is still being produced (a graceful drain waits for it)."""
        return self.reply is not None and not self.reply.finished

    def step(self, event: ev.Event, now: float) -> list[act.Action]:
        self._out, self._now = [], now
        self._handlers[type(event)](event)
        return self._out

    # ----------------------------------------------------------------- speech

    def _speech_started(self, event: ev.SpeechStarted) -> None:
        self._event("speech_started", turn_id=self.next_turn_id)
        self._forget_pause()
        if event.utterance_id == self._decided_utterance:
            self._decided_utterance = None  # the user went on: what stt says next is new
        if event.resumed:
            self._discard_early_reply()
        self._user_spoke()
        if self._agent_busy():
            if BARGE_IN not in self._timers:
                self._overlap_started(event)
        else:
            self._discard_early_reply()
            self._set_state(State.USER_SPEAKING)

    def _user_turn_ended(self, event: ev.UserTurnEnded) -> None:
        self._cancel_timer(BARGE_IN)
        if event.utterance_id and event.utterance_id in (self._decided_utterance, self._dismissed):
            return
        self._end_of_turn_at = event.decided_at
        # The long silence: the reason keeps the score that did not end the turn at the pause.
        self._end_reason = ("silence", self._pause.score if self._pause else None)
        self._forget_pause()

    def _speech_forgotten(self, _event: ev.SpeechForgotten) -> None:
        self._forget_pause()
        self._cancel_timer(BARGE_IN)
        self._overlapping = None
        self._resume("noise")
        self._end_of_turn_at = None
        if self.state is State.USER_SPEAKING or self.reply is None:
            self._set_state(State.LISTENING)

    def _ignores(self, event: ev.TranscriptReceived) -> bool:
        """A short sound made while the agent spoke (a cough): no transcript, no turn."""
        if not event.utterance_id or event.utterance_id != self._overlapping:
            return False
        if not self._agent_busy() or not self.policy.barge_in.ignores(event.duration_s):
            return False
        if event.final:
            sid, duration = self.policy.session_id, event.duration_s
            self._log("info", f"{sid}: ignored a {duration:.2f}s sound while the agent spoke")
            self._overlapping = None
        return True

    def _transcript(self, event: ev.TranscriptReceived) -> None:
        if self._judges(event) or self._ignores(event):
            return
        text = event.text.strip()
        policy = self.policy
        if event.utterance_id and event.utterance_id == self._decided_utterance:
            if not event.final:
                return
            self._decided_utterance = None
            if policy.early_thinking.confirms(self._decided_text, text):
                return  # stt's own final for the turn the machine ended at the pause
        early = policy.style.allows_early_start and policy.early_thinking.starts_on(
            text, event.at_pause
        )
        end_of_turn = policy.end_of_turn
        scored = early and end_of_turn.wants_model_score(text)
        if event.at_pause and text and end_of_turn.decides_at_pause and not scored:
            complete, score = end_of_turn.decide(text)
            if complete:
                self._end_at_pause(event, text, score)
                return
        self._event("transcript", text=event.text, final=event.final, turn_id=self.next_turn_id)
        if early:
            self._set_state(State.USER_SPEAKING)
            if self._start_reply(event, early=True, score_end=scored) and scored:
                assert self.reply is not None
                self._pause = PauseDecision(self.reply.attempt, event, text)
            return
        if not event.final:
            return
        self._overlapping = None
        reply = self.reply
        if (
            reply is not None
            and reply.early
            and reply.is_held
            and policy.early_thinking.confirms(reply.text, text)
        ):
            self._confirm_early(reply)
        elif text:
            self._discard_early_reply()
            if self._start_reply(event, early=False):
                self._set_state(State.THINKING)
        else:
            self._discard_early_reply()
            self._set_state(State.LISTENING)

    # ----------------------------------------------------------------- replies

    def _count_turn(self, timeline: Timeline) -> tuple[str, float | None]:
        """The user's turn is confirmed: it gets its number and its end-of-turn moments.

        Returns why it ended (the reason and the policy's score)."""
        self._turns += 1
        timeline.mark("stt_complete", self._now)
        reason, score = self._end_reason
        if self._end_of_turn_at is not None:
            timeline.mark("end_of_turn", self._end_of_turn_at)
            self._end_of_turn_at = None
        self._event(
            "end_of_turn",
            turn_id=f"{self.policy.session_id}-{self._turns}",
            reason=reason,
            score=score,
        )
        self._end_reason = ("silence", None)
        return reason, score

    def _start_reply(
        self, event: ev.TranscriptReceived, *, early: bool, score_end: bool = False
    ) -> bool:
        """Start a reply to the transcript; False when a stage is down (the client is told)."""
        self._cancel_reply()
        down = sorted(self._down)
        if down:
            if not early:
                self._event(
                    "error",
                    code="upstream_unavailable",
                    message=f"the {down[0]} service is unavailable; this turn cannot be answered",
                    stage=down[0],
                )
                self._set_state(State.LISTENING)
            return False
        self._attempts += 1
        sid = self.policy.session_id
        number = self._turns + 1
        timeline = Timeline(event.speech_end_at)
        ended = None if early else self._count_turn(timeline)
        serial = self.policy.style.holds_until_audio_done
        reply = Reply(
            attempt=f"{sid}-a{self._attempts}",
            turn_id=f"{sid}-{number}",
            number=number,
            text=event.text.strip(),
            utterance_id=event.utterance_id,
            timeline=timeline,
            early=early,
            serial=serial,
            held=[] if early or serial else None,
            ended=ended,
        )
        self.reply = reply
        self._emit(
            act.ReplyStarted(
                reply.attempt, reply.turn_id, number, early, serial, event.speech_end_at
            )
        )
        if not early:
            self._link(reply)
        self._emit(act.AskLlm(reply.attempt, reply.text, score_end=score_end, early=early))
        timeline.mark("llm_start", self._now)
        self._set_timer(LLM_QUIET, self._now + self.policy.stage_timeout_s)
        self._set_timer(TTS_QUIET, self._now + self.policy.stage_timeout_s)
        return True

    def _confirm_early(self, reply: Reply) -> None:
        reply.ended = self._count_turn(reply.timeline)
        reply.early = False
        self._emit(act.ConfirmLlm(reply.attempt))  # its tools with side effects may run
        self._emit(act.Count("early_starts", "confirmed"))
        self._set_state(State.THINKING)
        self._release(reply)

    def _release(self, reply: Reply) -> None:
        self._link(reply)
        for item in reply.release():
            self._output(reply, item)
        self._maybe_finish(reply)

    def _link(self, reply: Reply) -> None:
        if reply.utterance_id and not reply.linked:
            reply.linked = True
            self._emit(act.LinkUtterance(reply.attempt, reply.utterance_id))

    def _discard_early_reply(self) -> None:
        if self.reply is not None and self.reply.early:
            self._emit(act.Count("early_starts", "discarded"))
            self._cancel_reply()

    def _cancel_reply(self) -> bool:
        """Stop the current reply. The client hears of it (``interrupted``) only if it saw or
        heard any of it; returns whether it did."""
        reply, self.reply = self.reply, None
        self._cancel_timer(PLAYBACK_OVER)
        if reply is None:
            return False
        audible = not reply.early and (not reply.finished or reply.playing(self._now))
        self._drop_paced(reply)
        if reply.ducked:
            self._emit(act.BargeInDecided(reply.attempt, "interrupted", self._now))
        if not reply.finished:
            self._cancel_stages(reply)
            self._finish(reply, "discarded" if reply.early else "interrupted")
        if audible:
            self._emit(act.Count("interruptions"))
            self._emit(act.Count("turns", "interrupted"))
            self._event("interrupted", turn_id=reply.turn_id)
        return audible

    # ----------------------------------------------------------------- timers, stages

    def _timer_expired(self, event: ev.TimerExpired) -> None:
        at = self._timers.expired(event.timer)
        if at is None:
            return  # cancelled or replaced before it fired
        kind = event.timer.kind
        if kind == END_OF_TURN:
            self._end_paused()
        elif kind == BARGE_IN:
            self._barge_in_now(at)
        elif kind == OVERLAP_QUIET:
            self._dismiss(self._overlapping, "noise")
        elif kind == PLAYOUT:
            if self.reply is not None:
                self._pace(self.reply)
        elif kind == CHECK_IN:
            self._check_in_due()
        elif kind == PLAYBACK_OVER:
            if self.state in (State.AGENT_SPEAKING, State.THINKING):
                self._set_state(State.LISTENING)
                self._quiet_started()
        elif self.reply is not None and not self.reply.finished:
            self._fail(self.reply, "llm" if kind == LLM_QUIET else "tts")

    def _barge_in_now(self, decided_at: float) -> None:
        """The overlap is an interruption: the reply stops, the user has the turn."""
        self._cancel_timer(BARGE_IN)
        self._cancel_timer(OVERLAP_QUIET)
        self._overlapping = None
        self._set_state(State.USER_SPEAKING)
        if self._cancel_reply():
            self._emit(act.ObserveBargeIn(decided_at))

    def _playback_reported(self, event: ev.PlaybackReported) -> None:
        reply = self.reply
        if reply is not None and reply.turn_id == event.turn_id:
            reply.playback.report(event.played_s, self._now)

    def _policy_barge_in(self) -> BargeIn:
        return self.policy.barge_in

    def _playout(self) -> Playout:
        return self.policy.playout

    def _check_in_policy(self) -> CheckIn:
        return self.policy.check_in

    def _session_id(self) -> str:
        return self.policy.session_id

    def _stage_down(self, event: ev.StageDown) -> None:
        self._down.add(event.stage)
        self._cancel_reply()

    def _closed(self, _event: ev.SessionClosed) -> None:
        self._forget_pause()
        self._cancel_timer(BARGE_IN)
        self._cancel_reply()
        self._out += self._timers.cancel_all()

    def _set_timer(self, kind: str, at: float) -> None:
        self._out += self._timers.set(kind, at)

    def _cancel_timer(self, kind: str) -> None:
        self._out += self._timers.cancel(kind)

    # ----------------------------------------------------------------- state, output

    def _agent_busy(self) -> bool:
        reply = self.reply
        if reply is None or reply.early:
            return False
        return self.state in (State.THINKING, State.AGENT_SPEAKING) or reply.playing(self._now)

    def _set_state(self, state: State) -> None:
        if state is not self.state:
            self._emit(act.StateChanged(self.state.value, state.value))
            self.state = state

    def _emit(self, action: act.Action) -> None:
        self._out.append(action)
