"""How a reply is produced: the stages' output becomes client output, and a reply ends.

Part of the turn machine (gateway/turns/machine.py), which owns the state these steps use; kept
apart so each file holds one concern. Pure: the time is ``self._now``.
"""

from __future__ import annotations

import enum
from typing import Any

from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.playout import PlayoutSteps
from gateway.turns.policy import TurnPolicy
from gateway.turns.reply import Reply
from gateway.turns.tools import ToolSteps

PLAYBACK_OVER = "playback_over"
LLM_QUIET = "llm_quiet"
TTS_QUIET = "tts_quiet"


class State(enum.Enum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    THINKING = "thinking"
    AGENT_SPEAKING = "agent_speaking"


class ReplySteps(PlayoutSteps, ToolSteps):
    """The reply-production steps of the turn machine."""

    policy: TurnPolicy
    reply: Reply | None
    _now: float

    def _emit(self, action: act.Action) -> None:
        raise NotImplementedError

    def _set_timer(self, kind: str, at: float) -> None:
        raise NotImplementedError

    def _cancel_timer(self, kind: str) -> None:
        raise NotImplementedError

    def _set_state(self, state: State) -> None:
        raise NotImplementedError

    def _release(self, reply: Reply) -> None:
        raise NotImplementedError

    def _current(self, attempt: str) -> Reply | None:
        reply = self.reply
        if reply is None or reply.attempt != attempt or reply.finished:
            return None
        return reply

    def _reply_text(self, event: ev.ReplyText) -> None:
        reply = self._current(event.attempt)
        if reply is None:
            return
        self._set_timer(LLM_QUIET, self._now + self.policy.stage_timeout_s)
        if not reply.reply_text:
            reply.timeline.mark("llm_first_token", self._now)
            reply.timeline.mark("tts_start", self._now)
        reply.reply_text += event.text
        if self.policy.style.speaks_each_delta:
            self._emit(act.Speak(reply.attempt, event.text))
        self._output(
            reply, self._client_event("agent_text", turn_id=reply.turn_id, text=event.text)
        )

    def _reply_done(self, event: ev.ReplyDone) -> None:
        reply = self._current(event.attempt)
        if reply is None:
            return
        self._cancel_timer(LLM_QUIET)
        if not self.policy.style.speaks_each_delta and reply.reply_text:
            self._emit(act.Speak(reply.attempt, reply.reply_text))
        reply.provider = event.provider
        reply.llm_done = True
        reply.end_call = event.end_call
        if event.error:
            self._log("warning", f"turn {reply.turn_id}: llm error: {event.error}")
            error = self._client_event(
                "error", code="llm_error", message=event.error, turn_id=reply.turn_id
            )
            self._output(reply, error)
        self._emit(act.FlushSpeech(reply.attempt))

    def _audio_started(self, event: ev.SpeechAudioStarted) -> None:
        reply = self._current(event.attempt)
        if reply is None:
            return
        self._set_timer(TTS_QUIET, self._now + self.policy.stage_timeout_s)
        reply.playback.sample_rate = event.sample_rate
        reply.audio_opened = True
        self._output(reply, act.OpenAudio(event.sample_rate))
        start = self._client_event(
            "audio_start", turn_id=reply.turn_id, sample_rate=event.sample_rate
        )
        self._output(reply, start)

    def _audio(self, event: ev.SpeechAudio) -> None:
        reply = self._current(event.attempt)
        if reply is None:
            return
        self._set_timer(TTS_QUIET, self._now + self.policy.stage_timeout_s)
        self._output(reply, act.SendAudio(event.pcm, event.text))

    def _audio_ended(self, event: ev.SpeechAudioEnded) -> None:
        reply = self._current(event.attempt)
        if reply is None:
            return
        self._cancel_timer(TTS_QUIET)
        if event.error:
            error = self._client_event(
                "error", code="tts_error", message=event.error, turn_id=reply.turn_id
            )
            self._output(reply, error)
        reply.audio_done = True
        if reply.is_held and self.policy.style.holds_until_audio_done and not reply.early:
            self._release(reply)
        self._maybe_finish(reply)

    def _sent(self, reply: Reply, item: act.ClientOutput) -> None:
        if isinstance(item, act.SendAudio):
            reply.playback.add(item.pcm, item.text, self._now)
        self._emit(item)
        if isinstance(item, act.SendAudio) and "first_audio_sent" not in reply.timeline.marks:
            reply.timeline.mark("first_audio_sent", self._now)
            if reply is self.reply:
                self._set_state(State.AGENT_SPEAKING)

    def _maybe_finish(self, reply: Reply) -> None:
        if reply.finished or reply.failed or not reply.audio_done or reply.is_held:
            return
        if reply.paced or reply.ducked:
            return
        reply.timeline.mark("pipeline_complete", self._now)
        if reply.audio_opened:
            self._output(reply, act.CloseAudio())
        self._output(reply, self._client_event("audio_end", turn_id=reply.turn_id))
        waterfall = reply.timeline.waterfall_ms()
        self._output(
            reply, self._client_event("turn_complete", turn_id=reply.turn_id, latency=waterfall)
        )
        self._finish(reply, "complete")
        self._emit(act.Count("turns", "complete"))
        self._end_call_after(reply)

    def _finish(self, reply: Reply, ending: str) -> None:
        reply.finished = True
        self._cancel_timer(LLM_QUIET)
        self._cancel_timer(TTS_QUIET)
        self._emit(
            act.ReplyFinished(
                reply.attempt,
                reply.turn_id,
                reply.number,
                ending,
                dict(reply.timeline.marks),
                reply.provider,
                *(reply.ended or ("", None)),
            )
        )
        if ending in ("complete", "failed"):
            self._set_timer(PLAYBACK_OVER, reply.playback.ends_at(self._now))

    def _fail(self, reply: Reply, stage: str) -> None:
        """A stage went quiet: stop the reply, drop what it held, tell the client."""
        reply.failed = True
        timeout = self.policy.stage_timeout_s
        self._log("warning", f"turn {reply.turn_id}: {stage} sent nothing for {timeout:.0f}s")
        self._cancel_stages(reply)
        reply.drop_held()
        self._event(
            "error",
            code="stage_timeout",
            message=f"the {stage} stage did not answer in time",
            turn_id=reply.turn_id,
        )
        self._finish(reply, "failed")
        self._emit(act.Count("turns", "error"))

    def _reply_broke(self, _event: ev.ReplyBroke) -> None:
        """Carrying out the reply's actions failed: it ends, the session goes on."""
        reply = self.reply
        if reply is None or reply.finished:
            return
        reply.failed = True
        self._cancel_stages(reply)
        reply.drop_held()
        self._event(
            "error", code="turn_failed", message="the agent could not answer", turn_id=reply.turn_id
        )
        self._finish(reply, "failed")
        self._emit(act.Count("turns", "error"))
        self._set_state(State.LISTENING)

    def _cancel_stages(self, reply: Reply) -> None:
        heard = reply.playback.heard_text(self._now)
        if not reply.check_in:
            self._emit(act.CancelLlm(reply.attempt, heard, discard=reply.early))
        self._emit(act.CancelSpeech(reply.attempt))

    @staticmethod
    def _client_event(kind: str, **fields: Any) -> act.SendEvent:
        return act.SendEvent(kind, fields)

    def _event(self, kind: str, **fields: Any) -> None:
        self._emit(act.SendEvent(kind, fields))

    def _log(self, level: str, message: str) -> None:
        self._emit(act.Log(level, message))
