"""The driver records a barge-in's decisions as events on the reply's span."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import driver as driver_module
from gateway.driver import StageSenders, TurnDriver
from gateway.metrics import GatewayMetrics
from gateway.turns import events as ev
from gateway.turns.barge_in import BargeIn
from gateway.turns.machine import TurnMachine
from gateway.turns.playout import Playout
from gateway.turns.policy import EarlyThinking, TurnPolicy
from tests.unit.test_driver import RecordingTransport

pytestmark = pytest.mark.unit


async def test_ducked_resumed_and_interrupted_are_events_on_the_turns_span(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(driver_module, "tracer", provider.get_tracer("test"))
    policy = TurnPolicy(
        "s1",
        early_thinking=EarlyThinking(False),
        barge_in=BargeIn(0.3, max_backchannel_s=0.8, duck=True),
        playout=Playout(0.25),
    )
    transport = RecordingTransport()
    d = TurnDriver(
        TurnMachine(policy), transport, StageSenders(*([lambda _r: None] * 3)), GatewayMetrics()
    )
    await d.handle(ev.SpeechStarted("u1"))
    await d.handle(ev.TranscriptReceived("u1", "Hello.", True, False, 1.0, 0.0))
    reply = d.machine.reply
    assert reply is not None
    await d.handle(ev.SpeechAudioStarted(reply.attempt, 16000))
    await d.handle(ev.SpeechAudio(reply.attempt, b"\x01\x00" * 32000, "Hi there."))
    await d.handle(ev.SpeechStarted("u2"))
    await d.handle(ev.TranscriptReceived("u2", "Yeah.", False, True, 0.4, 0.0))
    await d.handle(ev.SpeechStarted("u2", resumed=True))
    await d.handle(ev.TranscriptReceived("u2", "Wait, stop.", True, False, 0.9, 0.0))
    await d.close()
    # The interrupting words became the next turn, with a span of its own.
    spans = {
        s.attributes["voice.turn_id"]: s for s in exporter.get_finished_spans() if s.attributes
    }
    span = spans["s1-1"]
    assert "s1-2" in spans
    names = [event.name for event in span.events]
    decisions = [n for n in names if n.startswith("barge_in.")]
    assert decisions == [
        "barge_in.ducked",
        "barge_in.resumed",
        "barge_in.ducked",
        "barge_in.interrupted",
    ]
    resumed = next(e for e in span.events if e.name == "barge_in.resumed")
    assert resumed.attributes == {"voice.barge_in.reason": "backchannel"}
    kinds = transport.events()
    assert kinds.index("ducked") < kinds.index("resumed") < kinds.index("interrupted")
