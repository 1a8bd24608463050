"""One agent turn: the user's text to the LLM, its text to TTS as it streams, audio to the client.

The turn owns nothing session-long: the session routes the LLM and TTS responses that carry
this turn's id into the turn's queues. Cancelling the turn's task stops both stages (a cancel
message to each) and tells the LLM what the user actually heard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from opentelemetry import trace

from gateway.protocol import event
from gateway.timeline import Timeline
from voice.telemetry import trace_context_message
from voice.v1 import llm_pb2, tts_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer("voice.gateway")

SendText = Callable[[str], Awaitable[None]]
SendBytes = Callable[[bytes], Awaitable[None]]


@dataclass
class TurnChannels:
    """How a turn talks to the stages and the client."""

    send_llm: Callable[[llm_pb2.ConverseRequest], None]
    send_tts: Callable[[tts_pb2.SynthesizeRequest], None]
    send_text: SendText
    send_bytes: SendBytes


@dataclass
class _Spoken:
    """What audio has gone out, so an interrupted turn knows what the user heard."""

    sample_rate: int = 0
    samples_sent: int = 0
    first_sent_at: float = 0.0
    chunks: list[tuple[float, str]] = field(default_factory=list)

    def add(self, pcm: bytes, text: str) -> None:
        if not self.samples_sent:
            self.first_sent_at = time.perf_counter()
        if text:
            self.chunks.append((self.samples_sent / max(self.sample_rate, 1), text))
        self.samples_sent += len(pcm) // 2

    def heard_text(self) -> str:
        if not self.samples_sent:
            return ""
        played_s = time.perf_counter() - self.first_sent_at
        return " ".join(text for start_s, text in self.chunks if start_s <= played_s)


class AgentTurn:
    def __init__(
        self,
        *,
        session_id: str,
        number: int,
        text: str,
        timeline: Timeline,
        channels: TurnChannels,
    ) -> None:
        self.turn_id = f"{session_id}-{number}"
        self.number = number
        self.text = text
        self.timeline = timeline
        self.llm_events: asyncio.Queue[llm_pb2.ConverseResponse] = asyncio.Queue()
        self.tts_events: asyncio.Queue[tts_pb2.SynthesizeResponse] = asyncio.Queue()
        self._channels = channels
        self._spoken = _Spoken()
        self.reply = ""
        self.provider = ""

    async def run(self) -> None:
        with tracer.start_as_current_span(
            "voice.turn",
            start_time=self.timeline.origin_ns,
            attributes={"voice.turn_id": self.turn_id, "voice.turn_number": self.number},
        ) as span:
            span.add_event("audio_received", timestamp=self.timeline.origin_ns)
            span.add_event("stt_complete", timestamp=self.timeline.wall_ns("stt_complete"))
            context = trace_context_message()
            try:
                self._channels.send_llm(
                    llm_pb2.ConverseRequest(
                        turn=llm_pb2.UserTurn(
                            turn_id=self.turn_id, text=self.text, trace_context=context
                        )
                    )
                )
                self._mark(span, "llm_start")
                text_pump = asyncio.create_task(self._pump_text(span, context))
                try:
                    await self._pump_audio(span)
                finally:
                    text_pump.cancel()
                    await asyncio.gather(text_pump, return_exceptions=True)
            except asyncio.CancelledError:
                span.add_event("interrupted")
                self._cancel_stages()
                raise
            self._mark(span, "pipeline_complete")
            span.set_attribute("llm.provider", self.provider)
            await self._channels.send_text(event("audio_end", turn_id=self.turn_id))
            waterfall = self.timeline.waterfall_ms()
            await self._channels.send_text(
                event("turn_complete", turn_id=self.turn_id, latency=waterfall)
            )
            log.info("%s", self.timeline.summary(self.number))

    def _mark(self, span: trace.Span, name: str) -> None:
        self.timeline.mark(name)
        span.add_event(name, timestamp=self.timeline.wall_ns(name))

    async def _pump_text(self, span: trace.Span, context: object) -> None:
        """LLM deltas -> client text and TTS input, until the LLM says the turn is done."""
        while True:
            response = await self.llm_events.get()
            if response.HasField("delta"):
                delta = response.delta.text
                if not self.reply:
                    self._mark(span, "llm_first_token")
                    self._mark(span, "tts_start")
                self.reply += delta
                self._channels.send_tts(
                    tts_pb2.SynthesizeRequest(
                        text=tts_pb2.TextInput(
                            turn_id=self.turn_id,
                            text=delta,
                            trace_context=context,  # type: ignore[arg-type]
                        )
                    )
                )
                await self._channels.send_text(
                    event("agent_text", turn_id=self.turn_id, text=delta)
                )
            else:
                done = response.done
                self.provider = done.provider
                if done.error:
                    log.warning("turn %s: llm error: %s", self.turn_id, done.error)
                    await self._channels.send_text(
                        event("error", code="llm_error", message=done.error, turn_id=self.turn_id)
                    )
                self._channels.send_tts(
                    tts_pb2.SynthesizeRequest(flush=tts_pb2.FlushTurn(turn_id=self.turn_id))
                )
                return

    async def _pump_audio(self, span: trace.Span) -> None:
        """TTS audio -> client binary frames, until the TTS says the turn's audio has ended."""
        while True:
            response = await self.tts_events.get()
            kind = response.WhichOneof("event")
            if kind == "start":
                self._spoken.sample_rate = response.start.sample_rate
                await self._channels.send_text(
                    event(
                        "audio_start", turn_id=self.turn_id, sample_rate=response.start.sample_rate
                    )
                )
            elif kind == "audio":
                pcm = response.audio.audio.pcm
                await self._channels.send_bytes(pcm)
                self._spoken.add(pcm, response.audio.text)
                if "first_audio_sent" not in self.timeline.marks:
                    self._mark(span, "first_audio_sent")
            elif kind == "end":
                if response.end.error:
                    await self._channels.send_text(
                        event(
                            "error",
                            code="tts_error",
                            message=response.end.error,
                            turn_id=self.turn_id,
                        )
                    )
                return

    def _cancel_stages(self) -> None:
        self._channels.send_llm(
            llm_pb2.ConverseRequest(
                cancel=llm_pb2.CancelTurn(
                    turn_id=self.turn_id, heard_text=self._spoken.heard_text(), has_heard_text=True
                )
            )
        )
        self._channels.send_tts(
            tts_pb2.SynthesizeRequest(cancel=tts_pb2.CancelSynthesis(turn_id=self.turn_id))
        )
