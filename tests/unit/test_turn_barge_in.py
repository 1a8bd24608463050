"""Barge-in like a person, paced output, what the client played, and checking in: the turn
machine's policies as scripts of timestamped events and the actions they give.

No event loop, no sleeps: every time is given.
"""

from __future__ import annotations

import pytest

from gateway.transports.messages import Played, ProtocolError, parse_client_message
from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.barge_in import BACKCHANNEL, ECHO, INTERRUPT, BargeIn
from gateway.turns.check_in import CheckIn
from gateway.turns.machine import State, TurnMachine
from gateway.turns.playout import Playout
from gateway.turns.policy import EarlyThinking, TurnPolicy
from gateway.turns.reply import Playback
from tests.unit.test_turn_machine import RATE, SID, audio, final, kinds, only

pytestmark = pytest.mark.unit

LEAD = 0.25
POLICY = BargeIn(0.3, max_backchannel_s=0.8, duck=True, duck_gain=0.25, echo_overlap=0.6)


def machine(*, check_in: CheckIn | None = None, gain: float = 0.25) -> TurnMachine:
    return TurnMachine(
        TurnPolicy(
            session_id=SID,
            early_thinking=EarlyThinking(True),
            barge_in=BargeIn(
                0.3, max_backchannel_s=0.8, duck=True, duck_gain=gain, echo_overlap=0.6
            ),
            playout=Playout(LEAD),
            check_in=check_in or CheckIn(),
        )
    )


def live_timer(m: TurnMachine, kind: str) -> act.SetTimer | None:
    entry = m._timers._active.get(kind)
    return None if entry is None else act.SetTimer(*entry)


def fire(m: TurnMachine, kind: str) -> list[act.Action]:
    """Step the live timer of ``kind`` at its time."""
    due = live_timer(m, kind)
    assert due is not None, f"no {kind} timer"
    return m.step(ev.TimerExpired(due.timer), due.at)


def audio_s(actions: list[act.Action]) -> float:
    return sum(len(a.pcm) // 2 for a in only(actions, act.SendAudio)) / RATE


def speaking(**options: object) -> tuple[TurnMachine, str, list[act.Action]]:
    """Reply "Hi there. How can I help?" made at once (2 s of audio at t = 2.0), paced."""
    m = machine(**options)  # type: ignore[arg-type]
    m.step(ev.SpeechStarted("u1"), 0.2)
    m.step(ev.UserTurnEnded("u1", 1.48), 1.5)
    attempt = only(m.step(final("hello", 1.0), 1.5), act.AskLlm)[0].attempt
    m.step(ev.ReplyText(attempt, "Hi there. How can I help?"), 1.8)
    m.step(ev.ReplyDone(attempt), 1.8)
    m.step(ev.SpeechAudioStarted(attempt, RATE), 1.9)
    out = m.step(ev.SpeechAudio(attempt, audio(1.0), "Hi there."), 2.0)
    out += m.step(ev.SpeechAudio(attempt, audio(1.0), "How can I help?"), 2.0)
    out += m.step(ev.SpeechAudioEnded(attempt), 2.0)
    return m, attempt, out


def play_out(m: TurnMachine, until: float = 99.0) -> list[act.Action]:
    out: list[act.Action] = []
    while (due := live_timer(m, "playout")) is not None and due.at <= until:
        out += m.step(ev.TimerExpired(due.timer), due.at)
    return out


# --------------------------------------------------------------------------- paced output


def test_the_first_audio_goes_at_once_and_the_rest_no_more_than_the_lead_ahead() -> None:
    m, _attempt, out = speaking()
    sent = only(out, act.SendAudio)
    assert sent and sent[0].text == "Hi there."
    assert kinds(out).index("SendAudio") < kinds(out).index("SetTimer:playout")
    assert LEAD <= audio_s(out) <= LEAD + 0.1
    assert "event:turn_complete" not in kinds(out)  # the rest waits in the machine
    rest = play_out(m)
    assert audio_s(out) + audio_s(rest) == pytest.approx(2.0)
    # Each release keeps the client no more than the lead (and a piece) ahead.
    due = live_timer(m, "playout")
    assert due is None
    names = kinds(rest)
    last_audio = len(names) - 1 - names[::-1].index("SendAudio")
    assert last_audio < names.index("event:audio_end") < names.index("event:turn_complete")
    texts = [a.text for a in only(out + rest, act.SendAudio) if a.text]
    assert texts == ["Hi there.", "How can I help?"]


def test_without_a_lead_everything_goes_as_it_is_made() -> None:
    m = TurnMachine(TurnPolicy(session_id=SID, early_thinking=EarlyThinking(False)))
    m.step(ev.SpeechStarted("u1"), 0.2)
    attempt = only(m.step(final("hello", 1.0), 1.5), act.AskLlm)[0].attempt
    m.step(ev.SpeechAudioStarted(attempt, RATE), 1.9)
    out = m.step(ev.SpeechAudio(attempt, audio(1.0)), 2.0)
    assert audio_s(out) == pytest.approx(1.0)


# --------------------------------------------------------------------------- duck, decide


def test_speech_over_the_agent_ducks_at_once_and_holds_the_rest() -> None:
    m, _attempt, _ = speaking()
    out = m.step(ev.SpeechStarted("u2"), 2.1)
    assert kinds(out) == [
        "event:speech_started",
        "SetTimer:barge_in",
        "CancelTimer:playout",
        "event:ducked",
        "BargeInDecided",
    ]
    ducked = only(out, act.SendEvent)[1]
    assert ducked.fields == {"turn_id": f"{SID}-1", "gain": 0.25}
    assert only(out, act.SetTimer)[0].at == pytest.approx(2.9)
    assert play_out(m) == []  # nothing more goes out while it is decided


def test_a_backchannel_resumes_the_answer_where_it_stopped_and_is_not_a_turn() -> None:
    m, _attempt, first = speaking()
    m.step(ev.SpeechStarted("u2"), 2.1)
    m.step(ev.SpeechPaused("u2"), 2.5)
    out = m.step(ev.TranscriptReceived("u2", "Mm-hm.", False, True, 0.4, 2.5), 2.7)
    assert "event:resumed" in kinds(out)
    assert only(out, act.SendEvent)[0].fields == {"turn_id": f"{SID}-1"}
    assert "SendAudio" in kinds(out)  # released from where it stopped
    assert not only(out, act.AskLlm)
    assert m.step(final("Mm-hm.", 2.5, "u2", 0.4), 2.9) == []  # its final is not a turn
    assert m.step(ev.UserTurnEnded("u2", 3.3), 3.3) == []
    rest = out + play_out(m)
    assert audio_s(first) + audio_s(rest) == pytest.approx(2.0)  # the answer is not lost
    assert "event:turn_complete" in kinds(rest)
    assert "event:interrupted" not in kinds(rest)


@pytest.mark.parametrize("text", ["Yeah.", "okay", "uh-huh", "right right", "", "Ha ha."])
def test_backchannels_and_sounds_do_not_interrupt(text: str) -> None:
    m, _attempt, _ = speaking()
    m.step(ev.SpeechStarted("u2"), 2.1)
    out = m.step(ev.TranscriptReceived("u2", text, True, False, 0.5, 2.6), 2.7)
    assert "event:resumed" in kinds(out)
    assert m.state is State.AGENT_SPEAKING


def test_words_interrupt_as_soon_as_they_are_recognised_and_nothing_follows() -> None:
    m, attempt, _ = speaking()
    m.step(ev.SpeechStarted("u2"), 2.1)
    text = "Wait, what about Tuesday?"
    out = m.step(ev.TranscriptReceived("u2", text, False, True, 0.6, 2.7), 2.75)
    names = kinds(out)
    assert names.index("BargeInDecided") < names.index("event:interrupted")
    assert "event:resumed" not in names
    assert only(out, act.CancelLlm)[0].attempt == attempt
    # The user's words go on as their turn (an early reply on the pause's text).
    assert only(out, act.AskLlm)[0].text == text
    assert "SendAudio" not in names
    assert m.step(ev.SpeechAudio(attempt, audio(0.5)), 2.8) == []
    assert play_out(m) == []


def test_speech_longer_than_a_backchannel_interrupts_without_words() -> None:
    m, _attempt, _ = speaking()
    m.step(ev.SpeechStarted("u2"), 2.1)
    out = fire(m, "barge_in")
    assert "event:interrupted" in kinds(out)
    assert only(out, act.ObserveBargeIn)[0].decided_at == pytest.approx(2.9)


def test_a_sound_that_stops_without_a_transcript_resumes() -> None:
    m, _attempt, _ = speaking()
    m.step(ev.SpeechStarted("u2"), 2.1)
    m.step(ev.SpeechPaused("u2"), 2.3)
    out = fire(m, "overlap_quiet")
    assert "event:resumed" in kinds(out)


def test_the_agents_own_words_coming_back_are_an_echo_not_a_turn() -> None:
    m, _attempt, _ = speaking()
    m.step(ev.SpeechStarted("u2"), 2.2)
    out = m.step(ev.TranscriptReceived("u2", "hi there", True, False, 0.6, 2.5), 2.6)
    assert "event:resumed" in kinds(out)
    assert not only(out, act.AskLlm)
    assert "resumed:echo" in [a.decision for a in only(out, act.BargeInDecided)]


def test_a_backchannel_then_more_words_is_judged_again() -> None:
    m, _attempt, _ = speaking()
    m.step(ev.SpeechStarted("u2"), 2.1)
    m.step(ev.TranscriptReceived("u2", "Yeah.", False, True, 0.4, 2.5), 2.6)
    assert "event:ducked" in kinds(m.step(ev.SpeechStarted("u2", resumed=True), 2.8))
    out = m.step(final("Yeah, but I need it on Friday.", 3.5, "u2", 1.2), 3.6)
    assert "event:interrupted" in kinds(out)
    assert only(out, act.AskLlm)[0].text == "Yeah, but I need it on Friday."


def test_with_gain_zero_the_client_pauses_and_the_clock_waits() -> None:
    m, attempt, _ = speaking(gain=0.0)
    m.step(ev.SpeechStarted("u2"), 2.1)
    # Paused for 1 s: at 3.1 the client is still 0.1 s into the audio, the first chunk.
    out = m.step(final("No, I meant Tuesday.", 3.0, "u2", 0.9), 3.1)
    assert only(out, act.CancelLlm)[0] == act.CancelLlm(attempt, "Hi there.", discard=False)


# --------------------------------------------------------------------------- what was played


def test_what_the_client_played_decides_what_the_user_heard() -> None:
    m, _attempt, _ = speaking()
    play_out(m, until=3.2)
    # The clock says 1.0 s is played by 3.05 at most; the client says 1.2 s.
    m.step(ev.PlaybackReported(f"{SID}-1", 1.2), 3.0)
    m.step(ev.PlaybackReported("another-turn", 0.0), 3.0)  # not this reply's: ignored
    m.step(ev.SpeechStarted("u2"), 3.05)
    out = fire(m, "barge_in")
    assert only(out, act.CancelLlm)[0].heard_text == "Hi there. How can I help?"


def test_without_reports_the_clock_estimates_the_playback() -> None:
    playback = Playback(sample_rate=RATE)
    playback.add(audio(1.0), "one", 0.0)
    playback.add(audio(1.0), "two", 1.5)  # an underrun: the second second plays from 1.5
    assert playback.ends_at(1.6) == pytest.approx(2.5)
    assert playback.played_s(1.6) == pytest.approx(1.1)
    assert playback.heard_text(1.6) == "one two"
    playback.pause(2.0, 0.0)
    assert playback.played_s(3.0) == pytest.approx(1.5)  # no further than at the pause
    playback.resume(3.0)
    assert playback.ends_at(3.0) == pytest.approx(3.5)
    playback.report(5.0, 3.0)  # more than was sent: clipped
    assert playback.played_s(3.0) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Mm-hm.", BACKCHANNEL),
        ("Yes.", BACKCHANNEL),
        ("No.", BACKCHANNEL),
        ("Okay, sure.", BACKCHANNEL),
        ("", BACKCHANNEL),
        ("Stop.", INTERRUPT),
        ("No, I meant the other one.", INTERRUPT),
        ("What time is it?", INTERRUPT),
        ("the weather in Paris today", ECHO),
    ],
)
def test_what_an_overlap_is(text: str, verdict: str) -> None:
    assert POLICY.judge(text, 0.6, "Here is the weather in Paris today: sunny.") == verdict


def test_interrupt_phrases_match_as_whole_words() -> None:
    assert POLICY.judge("Hold on a second.", 0.6, "") == INTERRUPT
    assert POLICY.judge("Yeah, go on.", 0.6, "") == INTERRUPT  # not a backchannel either
    assert POLICY.judge("Okay, right.", 0.6, "go on") == BACKCHANNEL
    assert POLICY.judge("Butter is fine.", 0.1, "") == BACKCHANNEL  # "but" is not in it


def test_a_short_word_interrupts_only_if_it_is_an_interrupt_word() -> None:
    assert POLICY.judge("Stop", 0.1, "") == INTERRUPT
    assert POLICY.judge("Tuesday", 0.1, "") == BACKCHANNEL


# --------------------------------------------------------------------------- check-in


def finished_playing(m: TurnMachine) -> float:
    play_out(m)
    due = live_timer(m, "playback_over")
    assert due is not None
    m.step(ev.TimerExpired(due.timer), due.at)
    return due.at


@pytest.mark.parametrize("then", ["keep", "end"])
def test_after_a_silence_the_agent_checks_in_once_then_ends_or_keeps(then: str) -> None:
    m, _attempt, _ = speaking(check_in=CheckIn(8.0, "Still there?", then))
    over = finished_playing(m)
    due = live_timer(m, "check_in")
    assert due is not None and due.at == pytest.approx(over + 8.0)
    out = fire(m, "check_in")
    check_in = only(out, act.SendEvent)[0]
    assert check_in.type == "check_in"
    speak = only(out, act.Speak)[0]
    assert speak.text == "Still there?"
    m.step(ev.SpeechAudioStarted(speak.attempt, RATE), due.at + 0.2)
    m.step(ev.SpeechAudio(speak.attempt, audio(0.5), "Still there?"), due.at + 0.3)
    m.step(ev.SpeechAudioEnded(speak.attempt), due.at + 0.3)
    finished_playing(m)
    out = fire(m, "check_in")
    if then == "end":
        assert kinds(out) == ["event:call_ended", "EndSession"]
        assert only(out, act.SendEvent)[0].fields["reason"] == "no_response"
    else:
        assert out == []
    assert live_timer(m, "check_in") is None  # once only


def test_user_speech_resets_the_check_in_and_a_cancelled_check_in_tells_no_llm() -> None:
    m, _attempt, _ = speaking(check_in=CheckIn(8.0))
    finished_playing(m)
    assert "CancelTimer:check_in" in kinds(m.step(ev.SpeechStarted("u2"), 20.0))
    assert live_timer(m, "check_in") is None
    m.step(ev.SpeechForgotten(), 20.5)
    m2, _a, _ = speaking(check_in=CheckIn(8.0))
    finished_playing(m2)
    speak = only(fire(m2, "check_in"), act.Speak)[0]
    m2.step(ev.SpeechAudioStarted(speak.attempt, RATE), 30.0)
    m2.step(ev.SpeechAudio(speak.attempt, audio(1.0)), 30.0)
    m2.step(ev.SpeechStarted("u3"), 30.1)
    out = fire(m2, "barge_in")
    assert "event:interrupted" in kinds(out)
    assert not only(out, act.CancelLlm)


def test_no_check_in_when_disabled() -> None:
    m, _attempt, _ = speaking()
    finished_playing(m)
    assert live_timer(m, "check_in") is None


# --------------------------------------------------------------------------- the played message


def test_a_played_message_is_parsed() -> None:
    message = parse_client_message('{"type": "played", "turn_id": "s1-2", "ms": 1250}')
    assert message == Played("s1-2", 1250.0)


@pytest.mark.parametrize(
    "raw",
    [
        '{"type": "played", "ms": 100}',
        '{"type": "played", "turn_id": "", "ms": 100}',
        '{"type": "played", "turn_id": 7, "ms": 100}',
        '{"type": "played", "turn_id": "s1-1"}',
        '{"type": "played", "turn_id": "s1-1", "ms": -1}',
        '{"type": "played", "turn_id": "s1-1", "ms": "100"}',
        '{"type": "played", "turn_id": "s1-1", "ms": true}',
        '{"type": "played", "turn_id": "s1-1", "ms": 1e300}',
        '{"type": "played", "turn_id": "s1-1", "ms": NaN}',
    ],
)
def test_a_malformed_played_message_is_refused_clearly(raw: str) -> None:
    with pytest.raises(ProtocolError) as error:
        parse_client_message(raw)
    assert error.value.code == "invalid_message"
    assert "played" in str(error.value)
