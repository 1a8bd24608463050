"""The turn machine, as scripts of timestamped events and the exact actions they give.

No event loop, no sleeps: every time is given, every action checked.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

import pytest

from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.machine import State, TurnMachine
from gateway.turns.policy import BargeIn, EarlyThinking, EndOfTurn, ReplyStyle, TurnPolicy

pytestmark = pytest.mark.unit

SID = "s1"
RATE = 16000


def machine(*, early: bool = True, serial: bool = False, timeout_s: float = 30.0) -> TurnMachine:
    return TurnMachine(
        TurnPolicy(
            session_id=SID,
            early_thinking=EarlyThinking(early),
            barge_in=BargeIn(0.3),
            style=ReplyStyle(serial),
            stage_timeout_s=timeout_s,
        )
    )


def audio(seconds: float) -> bytes:
    return b"\x01\x00" * int(RATE * seconds)


def final(text: str, at: float, utterance: str = "u1", duration: float = 1.0) -> ev.Event:
    return ev.TranscriptReceived(utterance, text, True, False, duration, at)


def at_pause(text: str, at: float, utterance: str = "u1") -> ev.Event:
    return ev.TranscriptReceived(utterance, text, False, True, 1.0, at)


def kinds(actions: list[act.Action]) -> list[str]:
    """Each action as a short name: client events by their type, the rest by class."""
    names = []
    for action in actions:
        if isinstance(action, act.SendEvent):
            names.append(f"event:{action.type}")
        elif isinstance(action, act.StateChanged):
            names.append(f"state:{action.new}")
        elif isinstance(action, act.Count):
            names.append(f"count:{action.metric}:{action.label}".rstrip(":"))
        elif isinstance(action, act.ReplyFinished):
            names.append(f"finished:{action.ending}")
        elif isinstance(action, act.SetTimer | act.CancelTimer):
            names.append(f"{type(action).__name__}:{action.timer.kind}")
        else:
            names.append(type(action).__name__)
    return names


def only(actions: list[act.Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


def timer(actions: list[act.Action], kind: str) -> act.SetTimer:
    return next(a for a in actions if isinstance(a, act.SetTimer) and a.timer.kind == kind)


def speaking_machine() -> tuple[TurnMachine, str, list[act.Action]]:
    """A machine whose reply to "hello" is playing 2 s of audio from t = 2.0."""
    m = machine(early=False)
    m.step(ev.SpeechStarted("u1"), 0.2)
    m.step(ev.UserTurnEnded("u1", 1.48), 1.5)
    started = m.step(final("hello", 1.0), 1.5)
    attempt = only(started, act.AskLlm)[0].attempt
    m.step(ev.ReplyText(attempt, "Hi there."), 1.8)
    m.step(ev.SpeechAudioStarted(attempt, RATE), 1.9)
    out = m.step(ev.SpeechAudio(attempt, audio(1.0), "Hi there."), 2.0)
    out += m.step(ev.SpeechAudio(attempt, audio(1.0), "How can I help?"), 2.1)
    return m, attempt, out


# --------------------------------------------------------------------------- one turn


def test_a_turn_from_speech_to_playback_over() -> None:
    m = machine(early=False)
    assert kinds(m.step(ev.SpeechStarted("u1"), 0.2)) == [
        "event:speech_started",
        "state:user_speaking",
    ]
    assert kinds(m.step(ev.SpeechPaused("u1"), 1.2)) == []
    assert kinds(m.step(ev.UserTurnEnded("u1", 1.48), 1.5)) == []
    out = m.step(final("What's the weather?", 1.0), 1.52)
    assert kinds(out) == [
        "event:transcript",
        "event:end_of_turn",
        "ReplyStarted",
        "LinkUtterance",
        "AskLlm",
        "SetTimer:llm_quiet",
        "SetTimer:tts_quiet",
        "state:thinking",
    ]
    end = only(out, act.SendEvent)[1]
    assert end.fields == {"turn_id": f"{SID}-1", "reason": "silence", "score": None}
    ask = only(out, act.AskLlm)[0]
    assert ask == act.AskLlm(f"{SID}-a1", "What's the weather?")
    assert only(out, act.SendEvent)[0].fields["turn_id"] == f"{SID}-1"
    a = ask.attempt
    out = m.step(ev.ReplyText(a, "Sunny."), 1.8)
    assert kinds(out) == [
        "CancelTimer:llm_quiet",
        "SetTimer:llm_quiet",
        "Speak",
        "event:agent_text",
    ]
    assert only(out, act.Speak)[0] == act.Speak(a, "Sunny.")
    out = m.step(ev.SpeechAudioStarted(a, RATE), 1.9)
    assert kinds(out) == [
        "CancelTimer:tts_quiet",
        "SetTimer:tts_quiet",
        "OpenAudio",
        "event:audio_start",
    ]
    out = m.step(ev.SpeechAudio(a, audio(0.5), "Sunny."), 2.0)
    assert kinds(out)[-2:] == ["SendAudio", "state:agent_speaking"]
    assert kinds(m.step(ev.ReplyDone(a, provider="local"), 2.05)) == [
        "CancelTimer:llm_quiet",
        "FlushSpeech",
    ]
    out = m.step(ev.SpeechAudioEnded(a), 2.1)
    assert kinds(out) == [
        "CancelTimer:tts_quiet",
        "CloseAudio",
        "event:audio_end",
        "event:turn_complete",
        "finished:complete",
        "SetTimer:playback_over",
        "count:turns:complete",
    ]
    waterfall = only(out, act.SendEvent)[1].fields["latency"]
    assert waterfall == {
        "audio_received": 0.0,
        "end_of_turn": 480.0,
        "stt_complete": 520.0,
        "llm_start": 520.0,
        "llm_first_token": 800.0,
        "tts_start": 800.0,
        "first_audio_sent": 1000.0,
        "pipeline_complete": 1100.0,
        "total": 1000.0,
    }
    assert only(out, act.ReplyFinished)[0].provider == "local"
    playback = timer(out, "playback_over")
    assert playback.at == pytest.approx(2.5)  # 0.5 s of audio sent from 2.0
    assert kinds(m.step(ev.TimerExpired(playback.timer), 2.5)) == ["state:listening"]
    assert m.state is State.LISTENING and not m.busy


def test_responses_of_another_attempt_and_stale_timers_are_ignored() -> None:
    m, attempt, _ = speaking_machine()
    assert m.step(ev.ReplyText("s1-a9", "stale"), 2.2) == []
    assert m.step(ev.SpeechAudio("s1-a9", audio(0.1)), 2.2) == []
    assert m.step(ev.TimerExpired(act.Timer("llm_quiet", 10_000)), 2.2) == []
    assert m.state is State.AGENT_SPEAKING and m.reply is not None and m.reply.attempt == attempt


# --------------------------------------------------------------------------- early thinking


def test_an_early_reply_is_held_then_released_in_order_when_the_final_agrees() -> None:
    m = machine()
    m.step(ev.SpeechStarted("u1"), 0.2)
    out = m.step(at_pause("Turn on the lights.", 1.0), 1.2)
    assert kinds(out) == [
        "event:transcript",
        "ReplyStarted",
        "AskLlm",
        "SetTimer:llm_quiet",
        "SetTimer:tts_quiet",
    ]
    started = only(out, act.ReplyStarted)[0]
    assert started.early and started.turn_id == f"{SID}-1"
    a = started.attempt
    assert kinds(m.step(ev.ReplyText(a, "Done."), 1.3))[-1] == "Speak"  # to TTS, not the client
    m.step(ev.SpeechAudioStarted(a, RATE), 1.35)
    assert only(m.step(ev.SpeechAudio(a, audio(0.4), "Done."), 1.4), act.SendAudio) == []
    m.step(ev.UserTurnEnded("u1", 1.48), 1.5)
    out = m.step(final("Turn on the lights", 1.0), 1.55)
    assert kinds(out) == [
        "event:transcript",
        "event:end_of_turn",
        "ConfirmLlm",
        "count:early_starts:confirmed",
        "state:thinking",
        "LinkUtterance",
        "event:agent_text",
        "OpenAudio",
        "event:audio_start",
        "SendAudio",
        "state:agent_speaking",
    ]
    out = m.step(ev.ReplyDone(a), 1.6) + m.step(ev.SpeechAudioEnded(a), 1.65)
    complete = only(out, act.SendEvent)[-1]
    assert complete.type == "turn_complete"
    # Audio was ready before the turn ended: it went out when the final confirmed it.
    assert complete.fields["latency"]["first_audio_sent"] == pytest.approx(550.0)
    assert complete.fields["latency"]["stt_complete"] == pytest.approx(550.0)


def test_an_early_reply_is_dropped_silently_when_the_user_goes_on() -> None:
    m = machine()
    m.step(ev.SpeechStarted("u1"), 0.2)
    a = only(m.step(at_pause("I'd like to", 1.0), 1.2), act.AskLlm)[0].attempt
    out = m.step(ev.SpeechStarted("u1", resumed=True), 1.3)
    assert kinds(out) == [
        "event:speech_started",
        "count:early_starts:discarded",
        "CancelLlm",
        "CancelSpeech",
        "CancelTimer:llm_quiet",
        "CancelTimer:tts_quiet",
        "finished:discarded",
    ]
    assert only(out, act.CancelLlm)[0] == act.CancelLlm(a, "", discard=True)
    assert "event:interrupted" not in kinds(out)
    assert m.step(ev.ReplyText(a, "late"), 1.4) == []


def test_a_final_that_differs_replaces_the_early_reply() -> None:
    m = machine()
    m.step(ev.SpeechStarted("u1"), 0.2)
    early = only(m.step(at_pause("Book a", 1.0), 1.2), act.AskLlm)[0]
    out = m.step(final("Book a table for two", 2.0), 2.5)
    assert "count:early_starts:discarded" in kinds(out)
    assert only(out, act.CancelLlm)[0].attempt == early.attempt
    ask = only(out, act.AskLlm)[0]
    assert ask.attempt != early.attempt and ask.text == "Book a table for two"
    assert only(out, act.ReplyStarted)[0].turn_id == f"{SID}-1"
    assert m.state is State.THINKING


def test_without_early_thinking_the_pause_decode_starts_nothing() -> None:
    m = machine(early=False)
    m.step(ev.SpeechStarted("u1"), 0.2)
    assert kinds(m.step(at_pause("Hello", 1.0), 1.2)) == ["event:transcript"]


# --------------------------------------------------------------------------- barge-in


def test_speech_that_lasts_interrupts_the_agent_and_keeps_what_was_heard() -> None:
    m, attempt, _ = speaking_machine()
    out = m.step(ev.SpeechStarted("u2"), 2.6)
    assert kinds(out) == ["event:speech_started", "SetTimer:barge_in"]
    barge = timer(out, "barge_in")
    assert barge.at == pytest.approx(2.9)
    out = m.step(ev.TimerExpired(barge.timer), 2.9)
    assert kinds(out) == [
        "state:user_speaking",
        "CancelLlm",
        "CancelSpeech",
        "CancelTimer:llm_quiet",
        "CancelTimer:tts_quiet",
        "finished:interrupted",
        "count:interruptions",
        "count:turns:interrupted",
        "event:interrupted",
        "ObserveBargeIn",
    ]
    # 0.9 s into the audio: the first chunk was heard, the second (from 1.0 s) was not.
    assert only(out, act.CancelLlm)[0] == act.CancelLlm(attempt, "Hi there.", discard=False)
    assert only(out, act.ObserveBargeIn)[0].decided_at == pytest.approx(2.9)
    assert m.step(ev.SpeechAudio(attempt, audio(0.1)), 3.0) == []


def test_a_cough_over_the_agent_is_ignored_transcript_and_all() -> None:
    m, _attempt, _ = speaking_machine()
    barge = timer(m.step(ev.SpeechStarted("u2"), 2.6), "barge_in")
    assert kinds(m.step(ev.SpeechPaused("u2"), 2.8)) == ["CancelTimer:barge_in"]
    assert m.step(ev.TranscriptReceived("u2", "Hm.", False, False, 0.2, 2.8), 2.85) == []
    assert kinds(m.step(ev.TranscriptReceived("u2", "Hm.", True, False, 0.2, 2.8), 3.2)) == ["Log"]
    assert m.step(ev.TimerExpired(barge.timer), 2.9) == []  # cancelled before it fired
    assert m.state is State.AGENT_SPEAKING


def test_after_playback_the_next_speech_starts_a_turn_not_a_barge_in() -> None:
    m, attempt, _ = speaking_machine()
    m.step(ev.ReplyDone(attempt), 2.2)
    over = timer(m.step(ev.SpeechAudioEnded(attempt), 2.3), "playback_over")
    assert over.at == pytest.approx(4.0)
    m.step(ev.TimerExpired(over.timer), 4.0)
    assert kinds(m.step(ev.SpeechStarted("u2"), 4.5)) == [
        "event:speech_started",
        "state:user_speaking",
    ]


def test_talking_over_audio_still_playing_after_the_reply_finished_interrupts_it() -> None:
    m, attempt, _ = speaking_machine()
    m.step(ev.ReplyDone(attempt), 2.2)
    m.step(ev.SpeechAudioEnded(attempt), 2.3)
    barge = timer(m.step(ev.SpeechStarted("u2"), 3.0), "barge_in")
    out = m.step(ev.TimerExpired(barge.timer), 3.3)
    # The stages are done with it (no cancel), but the client is told to stop playing.
    assert "CancelLlm" not in kinds(out)
    assert kinds(out)[-2:] == ["event:interrupted", "ObserveBargeIn"]


# --------------------------------------------------------------------------- failures


def test_a_stage_that_goes_quiet_fails_the_reply_with_a_clear_error() -> None:
    m = machine(early=False, timeout_s=5.0)
    m.step(ev.SpeechStarted("u1"), 0.2)
    out = m.step(final("hello", 1.0), 1.5)
    quiet = timer(out, "llm_quiet")
    assert quiet.at == pytest.approx(6.5)
    out = m.step(ev.TimerExpired(quiet.timer), 6.5)
    assert kinds(out) == [
        "Log",
        "CancelLlm",
        "CancelSpeech",
        "event:error",
        "CancelTimer:tts_quiet",
        "finished:failed",
        "SetTimer:playback_over",
        "count:turns:error",
    ]
    assert only(out, act.SendEvent)[0].fields["code"] == "stage_timeout"
    over = timer(out, "playback_over")
    assert kinds(m.step(ev.TimerExpired(over.timer), 6.5)) == ["state:listening"]


def test_a_stage_down_interrupts_and_refuses_turns_until_it_is_back() -> None:
    m, _attempt, _ = speaking_machine()
    out = m.step(ev.StageDown("llm"), 2.5)
    assert "event:interrupted" in kinds(out)
    m.step(ev.SpeechStarted("u2"), 3.0)
    out = m.step(final("are you there", 4.0, utterance="u2"), 4.5)
    error = only(out, act.SendEvent)[-1]
    assert error.type == "error" and error.fields["code"] == "upstream_unavailable"
    assert error.fields["stage"] == "llm" and m.state is State.LISTENING
    m.step(ev.StageUp("llm"), 5.0)
    m.step(ev.SpeechStarted("u3"), 5.5)
    assert only(m.step(final("hello again", 6.0, utterance="u3"), 6.5), act.AskLlm)


def test_after_the_stt_stream_broke_nothing_of_its_speech_is_kept() -> None:
    """An end of turn heard just before stt died must not date the next stream's turn."""
    m = machine()
    m.step(ev.SpeechStarted("u1"), 0.2)
    m.step(ev.UserTurnEnded("u1", 9.0), 9.0)
    assert kinds(m.step(ev.SpeechForgotten(), 9.5)) == ["state:listening"]
    m.step(ev.SpeechStarted("v1"), 1000.2)
    out = m.step(final("Hello there.", 1001.0, utterance="v1"), 1001.5)
    assert only(out, act.ReplyStarted)[0].origin == 1001.0
    assert m.reply is not None and "end_of_turn" not in m.reply.timeline.marks


def test_closing_cancels_the_reply_and_every_timer() -> None:
    m, attempt, _ = speaking_machine()
    out = m.step(ev.SessionClosed(), 2.5)
    assert only(out, act.CancelLlm)[0].attempt == attempt
    assert not only(out, act.SetTimer)
    assert not m.busy


# --------------------------------------------------------------------------- serial baseline


def test_serial_speaks_the_whole_reply_and_sends_audio_only_when_it_is_all_there() -> None:
    m = machine(serial=True)
    m.step(ev.SpeechStarted("u1"), 0.2)
    assert kinds(m.step(at_pause("Hello", 1.0), 1.2)) == ["event:transcript"]  # no early start
    a = only(m.step(final("Hello", 1.0), 1.5), act.AskLlm)[0].attempt
    assert "Speak" not in kinds(m.step(ev.ReplyText(a, "Hi. "), 1.6))
    out = m.step(ev.ReplyText(a, "Nice day."), 1.7) + m.step(ev.ReplyDone(a), 1.8)
    assert only(out, act.Speak) == [act.Speak(a, "Hi. Nice day.")]
    m.step(ev.SpeechAudioStarted(a, RATE), 2.0)
    assert only(m.step(ev.SpeechAudio(a, audio(0.5)), 2.1), act.SendAudio) == []
    out = m.step(ev.SpeechAudioEnded(a), 2.3)
    sent = [k for k in kinds(out) if k.startswith("event:") or k.endswith("Audio")]
    assert sent == [
        "event:agent_text",
        "event:agent_text",
        "OpenAudio",
        "event:audio_start",
        "SendAudio",
        "CloseAudio",
        "event:audio_end",
        "event:turn_complete",
    ]


# --------------------------------------------------------------------------- early thinking pays


class Stages:
    """Deterministic stages: the LLM's first text 300 ms after it is asked and done 100 ms
    later; the TTS's first audio 200 ms after its first text, its end 100 ms after a flush."""

    def __init__(self) -> None:
        self.queue: list[tuple[float, int, ev.Event]] = []
        self._order = 0

    def later(self, at: float, event: ev.Event) -> None:
        self._order += 1
        heapq.heappush(self.queue, (at, self._order, event))

    def react(self, actions: list[act.Action], now: float) -> None:
        for action in actions:
            if isinstance(action, act.AskLlm):
                self.later(now + 0.3, ev.ReplyText(action.attempt, "It is sunny."))
                self.later(now + 0.4, ev.ReplyDone(action.attempt))
            elif isinstance(action, act.Speak):
                self.later(now + 0.2, ev.SpeechAudioStarted(action.attempt, RATE))
                self.later(now + 0.2, ev.SpeechAudio(action.attempt, audio(1.0), action.text))
            elif isinstance(action, act.FlushSpeech):
                self.later(now + 0.3, ev.SpeechAudioEnded(action.attempt))


def first_audio_ms(early: bool) -> float:
    """The user pauses at 1.0 s (decode at 1.16 s); stt ends the turn at 1.48 s."""
    m = machine(early=early)
    stages = Stages()
    script: list[tuple[float, ev.Event]] = [
        (0.2, ev.SpeechStarted("u1")),
        (1.16, at_pause("What's the weather like?", 1.0)),
        (1.48, ev.UserTurnEnded("u1", 1.48)),
        (1.5, final("What's the weather like?", 1.0)),
    ]
    for at, event in script:
        stages.later(at, event)
    sent: list[float] = []
    step: Callable[[ev.Event, float], list[act.Action]] = m.step
    while stages.queue:
        now, _, event = heapq.heappop(stages.queue)
        actions = step(event, now)
        sent += [now for a in actions if isinstance(a, act.SendAudio)]
        stages.react(actions, now)
    return (sent[0] - 1.0) * 1000


def test_early_thinking_answers_sooner_on_the_same_stages() -> None:
    with_early, without = first_audio_ms(True), first_audio_ms(False)
    # Early: asked at 1.16, audio ready at 1.66 and sent at once (the final came at 1.5).
    assert with_early == pytest.approx(660.0)
    # Without: asked at 1.5, audio at 2.0.
    assert without == pytest.approx(1000.0)


def test_a_reply_without_audio_ends_without_closing_audio_it_never_opened() -> None:
    m = machine(early=False)
    m.step(ev.SpeechStarted("u1"), 0.2)
    a = only(m.step(final("hello", 1.0), 1.5), act.AskLlm)[0].attempt
    m.step(ev.ReplyDone(a, error="unavailable: no provider"), 1.6)
    out = m.step(ev.SpeechAudioEnded(a), 1.7)
    assert "CloseAudio" not in kinds(out)
    assert [k for k in kinds(out) if k.startswith("event:")] == [
        "event:audio_end",
        "event:turn_complete",
    ]
    over = timer(out, "playback_over")
    assert kinds(m.step(ev.TimerExpired(over.timer), 1.7)) == ["state:listening"]


def test_a_reply_that_broke_fails_with_turn_failed_and_the_machine_listens() -> None:
    m, attempt, _ = speaking_machine()
    out = m.step(ev.ReplyBroke(), 2.2)
    assert only(out, act.CancelLlm)[0].attempt == attempt
    error = only(out, act.SendEvent)[0]
    assert error.type == "error" and error.fields["code"] == "turn_failed"
    assert "finished:failed" in kinds(out) and "count:turns:error" in kinds(out)
    assert m.state is State.LISTENING
    assert m.step(ev.ReplyBroke(), 2.3) == []


# --------------------------------------------------------------------------- end of turn


def punctuation_machine() -> TurnMachine:
    return TurnMachine(
        TurnPolicy(session_id=SID, end_of_turn=EndOfTurn("punctuation", max_silence_ms=1000))
    )


def test_a_complete_question_ends_the_turn_at_the_pause() -> None:
    m = punctuation_machine()
    m.step(ev.SpeechStarted("u1"), 0.2)
    out = m.step(at_pause("What's the weather like?", 1.0), 1.2)
    assert kinds(out) == [
        "event:transcript",
        "event:end_of_turn",
        "ReplyStarted",
        "LinkUtterance",
        "AskLlm",
        "SetTimer:llm_quiet",
        "SetTimer:tts_quiet",
        "state:thinking",
    ]
    transcript, end = only(out, act.SendEvent)
    assert transcript.fields["final"] is True
    assert end.fields == {"turn_id": f"{SID}-1", "reason": "complete", "score": 1.0}
    assert m.reply is not None and m.reply.timeline.marks["end_of_turn"] == 1.2
    # stt's own end of turn and final for the same utterance change nothing.
    assert m.step(ev.UserTurnEnded("u1", 1.6), 1.6) == []
    assert m.step(final("What's the weather like?", 1.0), 1.65) == []
    assert m.reply.timeline.marks["end_of_turn"] == 1.2


def test_words_that_leave_the_turn_open_wait_for_more() -> None:
    m = punctuation_machine()
    m.step(ev.SpeechStarted("u1"), 0.2)
    out = m.step(at_pause("I'd like to book a.", 1.0), 1.2)
    assert "event:end_of_turn" not in kinds(out)
    assert only(out, act.ReplyStarted)[0].early  # early thinking as before, held
    m.step(ev.SpeechStarted("u1", resumed=True), 1.6)
    out = m.step(at_pause("I'd like to book a table for two.", 3.0), 3.2)
    end = [e for e in only(out, act.SendEvent) if e.type == "end_of_turn"]
    assert end and end[0].fields["reason"] == "complete"
    assert only(out, act.AskLlm)[0].text == "I'd like to book a table for two."


def test_a_user_who_goes_on_after_the_decision_gets_a_new_turn_with_all_the_words() -> None:
    m = punctuation_machine()
    m.step(ev.SpeechStarted("u1"), 0.2)
    first = only(m.step(at_pause("One.", 0.6), 0.8), act.AskLlm)[0]
    m.step(ev.SpeechStarted("u1", resumed=True), 1.0)
    out = m.step(final("One. Two. Three.", 2.0), 2.6)
    assert only(out, act.CancelLlm)[0].attempt == first.attempt
    assert "event:interrupted" in kinds(out)
    assert only(out, act.AskLlm)[0].text == "One. Two. Three."


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("What's the weather like?", 1.0),
        ("Turn on the lights.", 0.8),
        ("I'd like to book a", 0.0),
        ("I'd like to book a.", 0.0),
        ("one, two,", 0.0),
        ("Um.", 0.0),
        ("And so...", 0.0),
        ("", 0.0),
    ],
)
def test_punctuation_completeness(text: str, score: float) -> None:
    assert EndOfTurn("punctuation").completeness(text) == score
