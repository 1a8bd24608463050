"""The gateway's WebSocket protocol spoken by a stock Pipecat pipeline (runs in .venv-peer).

Only the subset that ``tools.client.talk`` uses (docs/protocol.md): the client sends a JSON
``start`` and binary PCM16 mono frames; the server sends ``ready``, ``transcript`` (final),
``agent_text``, ``audio_start``, binary PCM16 at the output rate and ``turn_complete``.

:class:`GatewaySerializer` is the wire format: Pipecat's transport hands it every frame it writes
(audio, transport messages) and every message the client sends. Pipecat's transports do not
write transcripts or TTS events themselves, so :class:`ProtocolTap` processors, placed in the
pipeline where those frames pass, turn them into transport messages. The tap in front of the
output transport queues ``audio_start`` as an ordinary (non-urgent) message right before the
``TTSStartedFrame``: the output transport's media sender plays messages and audio in the order
they come, so ``audio_start`` reaches the socket just before the turn's first audio chunk, and
no audio is held back for it.
"""

from __future__ import annotations

import json
from typing import Any

from pipecat.frames.frames import (
    BotStoppedSpeakingFrame,
    Frame,
    InputAudioRawFrame,
    InputTransportMessageFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMTextFrame,
    OutputAudioRawFrame,
    OutputTransportMessageFrame,
    OutputTransportMessageUrgentFrame,
    TranscriptionFrame,
    TTSStartedFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.serializers.base_serializer import FrameSerializer

from bench.peer.turns import TurnState


class GatewaySerializer(FrameSerializer):
    """PCM16 frames both ways; transport messages as JSON text frames; RTVI messages dropped."""

    def __init__(self, input_sample_rate: int) -> None:
        super().__init__()
        self._input_sample_rate = input_sample_rate

    async def serialize(self, frame: Frame) -> str | bytes | None:
        if isinstance(frame, OutputAudioRawFrame):
            return bytes(frame.audio)
        if isinstance(frame, (OutputTransportMessageFrame, OutputTransportMessageUrgentFrame)):
            if self.should_ignore_frame(frame):  # Pipecat's own RTVI messages
                return None
            return json.dumps(frame.message)
        return None

    async def deserialize(self, data: str | bytes) -> Frame | None:
        if isinstance(data, bytes):
            if len(data) % 2:
                return None
            return InputAudioRawFrame(
                audio=data, sample_rate=self._input_sample_rate, num_channels=1
            )
        try:
            message = json.loads(data)
        except ValueError:
            return None
        if isinstance(message, dict) and message.get("type") == "start":
            return InputTransportMessageFrame(message=message)
        return None  # "stop": the client closes the socket right after it


class ProtocolTap(FrameProcessor):
    """Passes every frame on; at its place in the pipeline, tells the client what went by.

    ``where`` is ``"stt"`` (after the STT service: final transcripts), ``"llm"`` (after the LLM:
    its text and the end of its reply) or ``"output"`` (just before the output transport: TTS
    starts, and the bot's stop, which comes back upstream from the transport).
    """

    def __init__(self, state: TurnState, where: str) -> None:
        super().__init__(name=f"ProtocolTap[{where}]")
        self._state = state
        self._where = where

    async def _send(self, message: dict[str, Any], *, urgent: bool = True) -> None:
        frame: Frame = (
            OutputTransportMessageUrgentFrame(message=message)
            if urgent
            else OutputTransportMessageFrame(message=message)
        )
        await self.push_frame(frame, FrameDirection.DOWNSTREAM)

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        state = self._state
        if self._where == "stt" and isinstance(frame, InputTransportMessageFrame):
            if isinstance(frame.message, dict) and frame.message.get("type") == "start":
                await self._send(state.ready())  # a `start` is answered by a new `ready`
        elif self._where == "stt" and isinstance(frame, TranscriptionFrame):
            if frame.text.strip():
                turn = state.on_transcript()
                await self._send(
                    {
                        "type": "transcript",
                        "text": frame.text.strip(),
                        "final": True,
                        "turn_id": turn,
                    }
                )
        elif self._where == "llm" and isinstance(frame, LLMTextFrame):
            await self._send({"type": "agent_text", "turn_id": state.turn, "text": frame.text})
        elif self._where == "llm" and isinstance(frame, LLMFullResponseStartFrame):
            state.on_reply_started()
        elif self._where == "llm" and isinstance(frame, LLMFullResponseEndFrame):
            state.on_reply_ended()
        elif self._where == "output" and isinstance(frame, TTSStartedFrame):
            turn = state.on_tts_started()
            if turn is not None:
                # In order with the audio that follows (see the module's docstring).
                await self._send({"type": "audio_start", "turn_id": turn}, urgent=False)
        elif (
            self._where == "output"
            and isinstance(frame, BotStoppedSpeakingFrame)
            and direction == FrameDirection.UPSTREAM
        ):
            complete = state.on_bot_stopped()
            if complete is not None:
                await self._send({"type": "turn_complete", "turn_id": complete, "latency": {}})
        await self.push_frame(frame, direction)
