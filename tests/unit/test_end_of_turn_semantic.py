"""The semantic end-of-turn rule in the turn machine: the model's score decides at the pause.

Scripts of timestamped events and the exact actions they give, as in test_turn_machine.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.machine import State, TurnMachine
from gateway.turns.policy import EarlyThinking, EndOfTurn, TurnPolicy

pytestmark = pytest.mark.unit

SID = "s1"


def semantic(*, short_ms: int = 160, early: bool = True) -> TurnMachine:
    rule = EndOfTurn("semantic", max_silence_ms=1200, short_silence_ms=short_ms, threshold=0.2)
    return TurnMachine(
        TurnPolicy(session_id=SID, end_of_turn=rule, early_thinking=EarlyThinking(early))
    )


def at_pause(text: str, speech_end_at: float) -> ev.Event:
    return ev.TranscriptReceived("u1", text, False, True, 1.0, speech_end_at)


def final(text: str, speech_end_at: float) -> ev.Event:
    return ev.TranscriptReceived("u1", text, True, False, 1.0, speech_end_at)


def events(actions: list[act.Action], kind: str) -> list[dict[str, Any]]:
    return [a.fields for a in actions if isinstance(a, act.SendEvent) and a.type == kind]


def asks(actions: list[act.Action]) -> list[act.AskLlm]:
    return [a for a in actions if isinstance(a, act.AskLlm)]


def timers(
    actions: list[act.Action], kind: type[act.SetTimer | act.CancelTimer]
) -> list[act.Timer]:
    return [
        a.timer
        for a in actions
        if isinstance(a, act.SetTimer | act.CancelTimer)
        and isinstance(a, kind)
        and a.timer.kind == "end_of_turn"
    ]


def paused(m: TurnMachine, text: str, *, speech_end_at: float = 1.0, now: float = 1.2) -> str:
    """The user pauses after ``text``: the early reply that asks for the score, its attempt."""
    m.step(ev.SpeechStarted("u1"), 0.2)
    out = m.step(at_pause(text, speech_end_at), now)
    assert not events(out, "end_of_turn")
    (ask,) = asks(out)
    assert ask.score_end and ask.text == text
    return ask.attempt


def test_a_high_score_ends_the_turn_and_releases_the_early_reply() -> None:
    m = semantic()
    attempt = paused(m, "What's the weather like?")
    m.step(ev.ReplyText(attempt, "Sunny."), 1.25)
    m.step(ev.SpeechAudioStarted(attempt, 24000), 1.25)
    held = m.step(ev.SpeechAudio(attempt, b"\x01\x00" * 240, "Sunny."), 1.25)
    assert not [a for a in held if isinstance(a, act.SendAudio)]  # the turn is not over yet
    out = m.step(ev.EndScored(attempt, 0.6), 1.26)
    assert events(out, "end_of_turn") == [
        {"turn_id": f"{SID}-1", "reason": "complete", "score": 0.6}
    ]
    assert events(out, "transcript")[0]["final"] is True
    assert [a.text for a in out if isinstance(a, act.SendAudio)] == ["Sunny."]
    assert events(out, "agent_text") == [{"turn_id": f"{SID}-1", "text": "Sunny."}]
    assert not asks(out)  # the early reply is the turn's reply: nothing asked again
    assert m.state is State.AGENT_SPEAKING  # its audio was ready: it plays at once
    assert m.reply is not None and m.reply.timeline.marks["end_of_turn"] == 1.26
    # stt's own end of turn and final for the utterance change nothing.
    assert m.step(ev.UserTurnEnded("u1", 2.2), 2.2) == []
    assert m.step(final("What's the weather like?", 1.0), 2.3) == []


def test_a_low_score_waits_for_the_long_silence_and_keeps_the_score_as_the_reason() -> None:
    m = semantic()
    attempt = paused(m, "Ask not.")
    assert m.step(ev.EndScored(attempt, 0.01), 1.25) == []
    m.step(ev.UserTurnEnded("u1", 2.2), 2.2)
    out = m.step(final("Ask not.", 1.0), 2.25)
    assert events(out, "end_of_turn") == [
        {"turn_id": f"{SID}-1", "reason": "silence", "score": 0.01}
    ]
    assert not asks(out)  # the held early reply said the same words: it is confirmed


def test_words_punctuation_leaves_open_are_not_scored() -> None:
    m = semantic()
    m.step(ev.SpeechStarted("u1"), 0.2)
    out = m.step(at_pause("I'd like to book a", 1.0), 1.2)
    (ask,) = asks(out)
    assert not ask.score_end and not events(out, "end_of_turn")


def test_without_the_models_score_punctuation_decides() -> None:
    m = semantic()
    attempt = paused(m, "Turn on the lights.")
    out = m.step(ev.EndScored(attempt, 0.0, available=False), 1.25)
    assert events(out, "end_of_turn")[0]["score"] == 0.8


def test_the_short_silence_is_waited_out_and_speech_in_it_keeps_the_turn_open() -> None:
    m = semantic(short_ms=400)
    attempt = paused(m, "What time is it?", speech_end_at=1.0, now=1.16)
    out = m.step(ev.EndScored(attempt, 0.9), 1.2)
    (due,) = timers(out, act.SetTimer)
    assert not events(out, "end_of_turn")
    out = m.step(ev.SpeechStarted("u1", resumed=True), 1.3)
    assert timers(out, act.CancelTimer) == [due]
    assert m.step(ev.TimerExpired(due), 1.4) == []  # stale: nothing ends
    assert m.state is State.USER_SPEAKING


def test_the_turn_ends_when_the_short_silence_runs_out() -> None:
    m = semantic(short_ms=400)
    attempt = paused(m, "What time is it?", speech_end_at=1.0, now=1.16)
    (due,) = timers(m.step(ev.EndScored(attempt, 0.9), 1.2), act.SetTimer)
    out = m.step(ev.TimerExpired(due), 1.4)
    assert events(out, "end_of_turn")[0]["reason"] == "complete"


def test_a_score_for_an_earlier_attempt_is_ignored() -> None:
    m = semantic()
    first = paused(m, "One.")
    m.step(ev.SpeechStarted("u1", resumed=True), 1.3)
    out = m.step(at_pause("One. Two.", 2.0), 2.2)
    second = asks(out)[0].attempt
    assert m.step(ev.EndScored(first, 0.9), 2.25) == []
    assert events(m.step(ev.EndScored(second, 0.9), 2.3), "end_of_turn")


def test_without_early_thinking_the_rule_falls_back_to_punctuation() -> None:
    m = semantic(early=False)
    m.step(ev.SpeechStarted("u1"), 0.2)
    out = m.step(at_pause("What's the weather like?", 1.0), 1.2)
    assert events(out, "end_of_turn")[0]["score"] == 1.0
    assert not asks(out)[0].score_end


@pytest.mark.parametrize(
    ("text", "model_score", "decision"),
    [
        ("What time is it?", 0.5, (True, 0.5)),
        ("What time is it?", 0.1, (False, 0.1)),
        ("I'd like to book a", 0.9, (False, 0.0)),  # punctuation's veto stands
        ("Turn on the lights.", None, (True, 0.8)),
    ],
)
def test_decide(text: str, model_score: float | None, decision: tuple[bool, float]) -> None:
    assert EndOfTurn("semantic", threshold=0.2).decide(text, model_score) == decision
