"""The turn machine's side of tool calls: client events, confirmation, hanging up."""

from __future__ import annotations

import pytest

from gateway.stage_events import from_llm
from gateway.turns import actions as act
from gateway.turns import events as ev
from tests.unit.test_turn_machine import RATE, at_pause, audio, final, kinds, machine, only
from voice.v1 import llm_pb2

pytestmark = pytest.mark.unit


def test_tool_events_reach_the_client_and_the_waterfall() -> None:
    m = machine(early=False)
    m.step(ev.SpeechStarted("u1"), 0.2)
    m.step(ev.UserTurnEnded("u1", 1.48), 1.5)
    out = m.step(final("What time is it?", 1.0), 1.55)
    ask = only(out, act.AskLlm)[0]
    assert not ask.early
    a = ask.attempt
    called = m.step(ev.ToolCalled(a, "c1", "current_time", "{}"), 1.6)
    assert only(called, act.SendEvent)[0].fields == {
        "turn_id": f"{m.policy.session_id}-1",
        "call_id": "c1",
        "name": "current_time",
        "arguments": {},
        "side_effects": False,
    }
    result = m.step(ev.ToolFinished(a, "c1", "current_time", "ok", "It is noon.", 3.2), 1.61)
    sent = only(result, act.SendEvent)[0]
    assert sent.type == "tool_result" and sent.fields["outcome"] == "ok"
    m.step(ev.ReplyText(a, "It's noon."), 1.7)
    m.step(ev.ReplyDone(a), 1.8)
    m.step(ev.SpeechAudioStarted(a, RATE), 1.85)
    m.step(ev.SpeechAudio(a, audio(0.5), "It's noon."), 1.9)
    done = m.step(ev.SpeechAudioEnded(a), 2.0)
    finished = only(done, act.ReplyFinished)[0]
    assert finished.marks["tool_call"] == 1.6 and finished.marks["tool_result"] == 1.61
    assert not only(done, act.EndSession)


def test_an_early_reply_holds_its_tool_events_and_is_confirmed_to_the_llm() -> None:
    m = machine(early=True)
    m.step(ev.SpeechStarted("u1"), 0.2)
    out = m.step(at_pause("What time is it", 1.0), 1.2)
    ask = only(out, act.AskLlm)[0]
    assert ask.early
    a = ask.attempt
    assert only(m.step(ev.ToolCalled(a, "c1", "current_time", "{}"), 1.3), act.SendEvent) == []
    m.step(ev.UserTurnEnded("u1", 1.48), 1.5)
    confirmed = m.step(final("What time is it", 1.0), 1.55)
    assert "ConfirmLlm" in kinds(confirmed)
    assert only(confirmed, act.ConfirmLlm)[0].attempt == a
    assert "event:tool_call" in kinds(confirmed)  # released with the rest


def test_a_discarded_early_reply_is_never_confirmed() -> None:
    m = machine(early=True)
    m.step(ev.SpeechStarted("u1"), 0.2)
    a = only(m.step(at_pause("Book a table", 1.0), 1.2), act.AskLlm)[0].attempt
    out = m.step(ev.SpeechStarted("u1", resumed=True), 1.4)
    cancel = only(out, act.CancelLlm)[0]
    assert cancel.attempt == a and cancel.discard
    assert not only(out, act.ConfirmLlm)


def test_end_call_says_goodbye_then_ends_the_session_once_played() -> None:
    m = machine(early=False)
    m.step(ev.SpeechStarted("u1"), 0.2)
    m.step(ev.UserTurnEnded("u1", 1.48), 1.5)
    a = only(m.step(final("Goodbye.", 1.0), 1.55), act.AskLlm)[0].attempt
    m.step(ev.ReplyText(a, "Goodbye!"), 1.6)
    m.step(ev.ReplyDone(a, end_call=True), 1.7)
    m.step(ev.SpeechAudioStarted(a, RATE), 1.75)
    m.step(ev.SpeechAudio(a, audio(1.0), "Goodbye!"), 1.8)
    out = m.step(ev.SpeechAudioEnded(a), 1.9)
    names = kinds(out)
    assert names.index("event:turn_complete") < names.index("event:call_ended")
    end = only(out, act.EndSession)[0]
    assert end.at == pytest.approx(2.8)  # when the second of goodbye has played


def test_the_llm_service_s_tool_messages_become_events() -> None:
    call = llm_pb2.ConverseResponse(
        tool_call=llm_pb2.ToolCall(turn_id="a1", call_id="c", name="n", arguments_json="{}")
    )
    assert from_llm(call) == ev.ToolCalled("a1", "c", "n", "{}", False)
    result = llm_pb2.ConverseResponse(
        tool_result=llm_pb2.ToolResult(
            turn_id="a1", call_id="c", name="n", outcome="timeout", result="r", duration_ms=5
        )
    )
    assert from_llm(result) == ev.ToolFinished("a1", "c", "n", "timeout", "r", 5.0)
    done = llm_pb2.ConverseResponse(done=llm_pb2.TurnDone(turn_id="a1", end_call=True))
    assert from_llm(done) == ev.ReplyDone("a1", end_call=True)
