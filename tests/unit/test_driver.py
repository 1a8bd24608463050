"""The driver carries out the machine's actions; a failure costs the reply, not the session."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.driver import StageSenders, TurnDriver
from gateway.metrics import GatewayMetrics
from gateway.transports.base import ClientInput, StartRequest
from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.machine import TurnMachine
from gateway.turns.policy import EarlyThinking, TurnPolicy

pytestmark = pytest.mark.unit


class RecordingTransport:
    input_rate = 16000
    output_rate = 16000
    codec = "pcm16"

    def __init__(self, fail_audio: int = 0) -> None:
        self.sent: list[act.ClientOutput] = []
        self._fail_audio = fail_audio

    async def send(self, output: act.ClientOutput) -> None:
        if isinstance(output, act.SendAudio) and self._fail_audio:
            self._fail_audio -= 1
            raise RuntimeError("the encoder broke")
        self.sent.append(output)

    async def receive(self) -> ClientInput | None:
        return None

    def configure(self, request: StartRequest) -> None:
        pass

    async def send_event(self, kind: str, **fields: Any) -> None:
        self.sent.append(act.SendEvent(kind, fields))

    async def close(self, *, code: int, reason: str) -> None:
        pass

    def heard_text(self, estimate: str) -> str:
        return estimate

    async def hang_up(self, *, at: float, reason: str) -> None:
        pass

    def events(self) -> list[str]:
        return [o.type for o in self.sent if isinstance(o, act.SendEvent)]


def driver(transport: RecordingTransport) -> tuple[TurnDriver, dict[str, list[Any]]]:
    sent: dict[str, list[Any]] = {"stt": [], "llm": [], "tts": []}
    senders = StageSenders(sent["stt"].append, sent["llm"].append, sent["tts"].append)
    machine = TurnMachine(TurnPolicy("s1", early_thinking=EarlyThinking(False)))
    return TurnDriver(machine, transport, senders, GatewayMetrics()), sent


async def ask(d: TurnDriver, text: str, utterance: str) -> str:
    await d.handle(ev.SpeechStarted(utterance))
    await d.handle(ev.TranscriptReceived(utterance, text, True, False, 1.0, 0.0))
    reply = d.machine.reply
    assert reply is not None
    return reply.attempt


async def test_requests_go_to_the_stages_with_the_replys_attempt_and_trace() -> None:
    transport = RecordingTransport()
    d, sent = driver(transport)
    attempt = await ask(d, "Hello.", "u1")
    [request] = sent["llm"]
    assert request.turn.turn_id == attempt and request.turn.text == "Hello."
    assert request.turn.trace_context is not None
    [link] = sent["stt"]
    assert link.control.utterance_id == "u1"
    await d.handle(ev.ReplyText(attempt, "Hi."))
    assert sent["tts"][0].text.text == "Hi." and sent["tts"][0].text.turn_id == attempt
    assert transport.events() == ["speech_started", "transcript", "end_of_turn", "agent_text"]
    await d.close()


async def test_a_failure_carrying_out_a_reply_fails_that_reply_and_the_session_goes_on() -> None:
    transport = RecordingTransport(fail_audio=1)
    d, sent = driver(transport)
    runner = asyncio.create_task(d.run())
    attempt = await ask(d, "Hello.", "u1")
    for event in (
        ev.SpeechAudioStarted(attempt, 16000),
        ev.SpeechAudio(attempt, b"\x01\x00" * 1600, "Hi."),
    ):
        d.post(event)
    await asyncio.sleep(0.05)
    assert transport.events()[-1] == "error"
    error = transport.sent[-1]
    assert isinstance(error, act.SendEvent) and error.fields["code"] == "turn_failed"
    assert [r.WhichOneof("request") for r in sent["llm"]] == ["turn", "cancel"]
    # The next turn is answered as usual.
    second = await ask(d, "Are you there?", "u2")
    assert second != attempt and sent["llm"][-1].turn.text == "Are you there?"
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await d.close()
