"""The gateway's turn taking, driven by fake stt events and fake stage responses."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from gateway.conversation import Conversation, ConversationConfig, State
from gateway.metrics import GatewayMetrics
from gateway.turn import TurnChannels
from voice.v1 import audio_pb2, llm_pb2, stt_pb2, tts_pb2

pytestmark = pytest.mark.unit

Kind = stt_pb2.SpeechEvent


class Wire:
    """Everything the conversation sends: to the llm, the tts and the client."""

    def __init__(self) -> None:
        self.stt: list[stt_pb2.TranscribeRequest] = []
        self.llm: list[llm_pb2.ConverseRequest] = []
        self.tts: list[tts_pb2.SynthesizeRequest] = []
        self.client: list[Any] = []

    def channels(self) -> TurnChannels:
        async def send_text(text: str) -> None:
            self.client.append(json.loads(text))

        async def send_bytes(data: bytes) -> None:
            self.client.append(data)

        async def send_error(code: str, message: str, **fields: Any) -> None:
            self.client.append({"type": "error", "code": code, "message": message, **fields})

        return TurnChannels(
            self.stt.append, self.llm.append, self.tts.append, send_text, send_bytes, send_error
        )

    def client_types(self) -> list[str]:
        return ["audio" if isinstance(m, bytes) else m["type"] for m in self.client]


def make(
    barge_in_s: float = 0.05,
    turn_timeout_s: float = 5.0,
    serial: bool = False,
    early_thinking: bool = True,
) -> tuple[Conversation, Wire]:
    wire = Wire()
    conversation = Conversation(
        ConversationConfig(
            "s",
            serial=serial,
            barge_in_s=barge_in_s,
            early_thinking=early_thinking,
            turn_timeout_s=turn_timeout_s,
        ),
        wire.channels(),
        lambda _stream_s: time.perf_counter(),
        GatewayMetrics(),
    )
    return conversation, wire


def speech(
    kind: stt_pb2.SpeechEvent.Kind.ValueType, utterance: str = "u1", at: float = 1.0
) -> stt_pb2.SpeechEvent:
    return stt_pb2.SpeechEvent(kind=kind, utterance_id=utterance, stream_time_s=at, speech_end_s=at)


def transcript(
    text: str,
    *,
    final: bool = False,
    at_pause: bool = False,
    utterance: str = "u1",
    start: float = 0.0,
    end: float = 1.0,
) -> stt_pb2.Transcript:
    return stt_pb2.Transcript(
        utterance_id=utterance,
        text=text,
        final=final,
        at_pause=at_pause,
        speech_start_s=start,
        speech_end_s=end,
    )


async def answer(conversation: Conversation, text: str = "Hi there.", audio_s: float = 0.0) -> None:
    """Play the llm and tts sides of the current turn to its end."""
    turn = conversation.turn
    assert turn is not None
    turn.llm_events.put_nowait(
        llm_pb2.ConverseResponse(delta=llm_pb2.TextDelta(turn_id=turn.stage_id, text=text))
    )
    turn.llm_events.put_nowait(
        llm_pb2.ConverseResponse(done=llm_pb2.TurnDone(turn_id=turn.stage_id, provider="fake"))
    )
    turn.tts_events.put_nowait(
        tts_pb2.SynthesizeResponse(
            start=tts_pb2.AudioStart(turn_id=turn.stage_id, sample_rate=16000)
        )
    )
    pcm = b"\x01\x00" * max(1, int(16000 * audio_s))
    turn.tts_events.put_nowait(
        tts_pb2.SynthesizeResponse(
            audio=tts_pb2.SynthesizedAudio(
                turn_id=turn.stage_id,
                audio=audio_pb2.AudioChunk(pcm=pcm, sample_rate=16000),
                text=text,
            )
        )
    )
    turn.tts_events.put_nowait(
        tts_pb2.SynthesizeResponse(end=tts_pb2.AudioEnd(turn_id=turn.stage_id))
    )
    for _ in range(20):
        await asyncio.sleep(0)


async def test_an_early_turn_stays_silent_until_the_final_transcript_confirms_it() -> None:
    conversation, wire = make()
    await conversation.on_speech_event(speech(Kind.KIND_SPEECH_STARTED))
    await conversation.on_speech_event(speech(Kind.KIND_PAUSE))
    await conversation.on_transcript(transcript("What time is it?", at_pause=True))
    await asyncio.sleep(0)
    assert wire.llm[0].turn.text == "What time is it?"
    await answer(conversation)
    assert wire.client == []  # the whole answer is held
    await conversation.on_speech_event(speech(Kind.KIND_END_OF_TURN))
    await conversation.on_transcript(transcript("What time is it?", final=True))
    await asyncio.sleep(0.01)
    types = wire.client_types()
    assert sorted(types) == ["agent_text", "audio", "audio_end", "audio_start", "turn_complete"]
    assert types[-2:] == ["audio_end", "turn_complete"]
    waterfall = wire.client[-1]["latency"]
    assert waterfall["llm_start"] <= waterfall["stt_complete"] <= waterfall["first_audio_sent"]
    assert "end_of_turn" in waterfall
    await conversation.close()


async def test_an_early_turn_is_dropped_without_a_trace_when_the_user_goes_on() -> None:
    conversation, wire = make()
    await conversation.on_speech_event(speech(Kind.KIND_SPEECH_STARTED))
    await conversation.on_transcript(transcript("I want", at_pause=True))
    await asyncio.sleep(0)
    await conversation.on_speech_event(speech(Kind.KIND_SPEECH_RESUMED))
    cancel = [r.cancel for r in wire.llm if r.HasField("cancel")]
    assert len(cancel) == 1 and cancel[0].discard
    assert any(r.HasField("cancel") for r in wire.tts)
    assert wire.client == []
    await conversation.on_transcript(transcript("I want a pizza", final=True))
    await asyncio.sleep(0)
    assert [r.turn.text for r in wire.llm if r.HasField("turn")] == ["I want", "I want a pizza"]
    await conversation.close()


async def test_without_early_thinking_the_llm_waits_for_the_final_transcript() -> None:
    conversation, wire = make(early_thinking=False)
    await conversation.on_speech_event(speech(Kind.KIND_SPEECH_STARTED))
    await conversation.on_speech_event(speech(Kind.KIND_PAUSE))
    await conversation.on_transcript(transcript("What time is it?", at_pause=True))
    await asyncio.sleep(0)
    assert wire.llm == []
    await conversation.on_speech_event(speech(Kind.KIND_END_OF_TURN))
    await conversation.on_transcript(transcript("What time is it?", final=True))
    await asyncio.sleep(0)
    assert [r.turn.text for r in wire.llm if r.HasField("turn")] == ["What time is it?"]
    await conversation.close()


async def test_speech_over_the_agent_interrupts_it_after_the_barge_in_time() -> None:
    conversation, wire = make(barge_in_s=0.05)
    await conversation.on_transcript(transcript("Tell me a story", final=True))
    await answer(conversation, "Once upon a time.", audio_s=5.0)
    assert conversation.state is State.AGENT_SPEAKING
    await conversation.on_speech_event(speech(Kind.KIND_SPEECH_STARTED, utterance="u2"))
    assert "interrupted" not in wire.client_types()
    await asyncio.sleep(0.1)
    assert wire.client_types()[-1] == "interrupted"
    assert conversation.state.value == State.USER_SPEAKING.value
    await conversation.close()


async def test_a_cough_while_the_agent_speaks_is_ignored() -> None:
    conversation, wire = make(barge_in_s=0.3)
    await conversation.on_transcript(transcript("Tell me a story", final=True))
    await answer(conversation, "Once upon a time.", audio_s=5.0)
    await conversation.on_speech_event(speech(Kind.KIND_SPEECH_STARTED, utterance="u2"))
    await conversation.on_speech_event(speech(Kind.KIND_PAUSE, utterance="u2"))
    cough = transcript("Hm.", final=True, utterance="u2", start=2.0, end=2.15)
    assert conversation.ignores(cough)
    await asyncio.sleep(0.4)
    assert "interrupted" not in wire.client_types()
    assert conversation.state is State.AGENT_SPEAKING
    await conversation.close()


async def test_a_stage_that_goes_quiet_fails_the_turn_with_a_clear_error() -> None:
    conversation, wire = make(turn_timeout_s=0.05)
    await conversation.on_transcript(transcript("Hello", final=True))
    await asyncio.sleep(0.2)
    errors = [m for m in wire.client if isinstance(m, dict) and m["type"] == "error"]
    assert errors and errors[0]["code"] == "stage_timeout"
    assert any(r.HasField("cancel") for r in wire.llm)
    await conversation.close()


async def test_serial_mode_sends_the_whole_reply_to_tts_and_audio_only_at_the_end() -> None:
    conversation, wire = make(serial=True)
    await conversation.on_transcript(transcript("Hi", at_pause=True))
    assert not any(r.HasField("turn") for r in wire.llm)  # no early thinking in serial mode
    await conversation.on_transcript(transcript("Hi", final=True))
    turn = conversation.turn
    assert turn is not None
    for text in ("Hello ", "there."):
        turn.llm_events.put_nowait(
            llm_pb2.ConverseResponse(delta=llm_pb2.TextDelta(turn_id=turn.stage_id, text=text))
        )
    turn.llm_events.put_nowait(
        llm_pb2.ConverseResponse(done=llm_pb2.TurnDone(turn_id=turn.stage_id))
    )
    await asyncio.sleep(0.01)
    texts = [r.text.text for r in wire.tts if r.HasField("text")]
    assert texts == ["Hello there."]
    assert wire.client == []
    await answer_audio_only(conversation)
    assert wire.client_types()[-2:] == ["audio_end", "turn_complete"]
    await conversation.close()


async def answer_audio_only(conversation: Conversation) -> None:
    turn = conversation.turn
    assert turn is not None
    turn.tts_events.put_nowait(
        tts_pb2.SynthesizeResponse(
            start=tts_pb2.AudioStart(turn_id=turn.stage_id, sample_rate=16000)
        )
    )
    turn.tts_events.put_nowait(
        tts_pb2.SynthesizeResponse(
            audio=tts_pb2.SynthesizedAudio(
                turn_id=turn.stage_id,
                audio=audio_pb2.AudioChunk(pcm=b"\x01\x00" * 160, sample_rate=16000),
            )
        )
    )
    turn.tts_events.put_nowait(
        tts_pb2.SynthesizeResponse(end=tts_pb2.AudioEnd(turn_id=turn.stage_id))
    )
    for _ in range(20):
        await asyncio.sleep(0)
