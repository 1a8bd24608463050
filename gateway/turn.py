"""One agent turn: the user's text to the LLM, its text to TTS as it streams, audio to the client.

The turn owns nothing session-long: the session routes the LLM and TTS responses that carry
this turn's stage id into the turn's queues. Cancelling the turn's task stops both stages (a
cancel message to each) and tells the LLM what the user actually heard.

A turn can start *early* (early thinking): it runs the LLM and TTS on the transcript decoded at
the user's pause, but holds everything it would send to the client until the session confirms
that the turn really ended (``release``), or drops it if the user went on.

A *serial* turn works as voice pipelines did before streaming, for comparison: the whole reply
first, then all of its speech, and only then any audio to the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from opentelemetry import trace

from gateway.codec import AudioOut, Pcm16Out
from gateway.protocol import event
from gateway.timeline import Timeline
from voice.telemetry import trace_context_message
from voice.v1 import audio_pb2, llm_pb2, stt_pb2, tts_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer("voice.gateway")

Response = TypeVar("Response", llm_pb2.ConverseResponse, tts_pb2.SynthesizeResponse)


# What a turn sends the client, in order: an event, audio with the text it speaks, or the
# end of the audio (the codec's last frames).
class EndOfAudio:
    pass


END_OF_AUDIO = EndOfAudio()
Item = str | tuple[bytes, str] | EndOfAudio
SendText = Callable[[str], Awaitable[None]]
SendBytes = Callable[[bytes], Awaitable[None]]


@dataclass
class TurnChannels:
    """How a turn talks to the stages and the client."""

    send_stt: Callable[[stt_pb2.TranscribeRequest], None]
    send_llm: Callable[[llm_pb2.ConverseRequest], None]
    send_tts: Callable[[tts_pb2.SynthesizeRequest], None]
    send_text: SendText
    send_bytes: SendBytes
    send_error: Callable[..., Awaitable[None]]
    # The client's codec for agent audio at a sample rate (PCM16 passes through).
    audio_out: Callable[[int], AudioOut] = lambda _rate: Pcm16Out()


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

    def playing(self) -> bool:
        """Whether the client is still playing this audio (sent faster than real time)."""
        if not self.samples_sent:
            return False
        duration_s = self.samples_sent / max(self.sample_rate, 1)
        return time.perf_counter() < self.first_sent_at + duration_s

    def heard_text(self) -> str:
        if not self.samples_sent:
            return ""
        played_s = time.perf_counter() - self.first_sent_at
        return " ".join(text for start_s, text in self.chunks if start_s <= played_s)


class AgentTurn:
    def __init__(
        self,
        *,
        turn_id: str,
        stage_id: str,
        number: int,
        text: str,
        timeline: Timeline,
        channels: TurnChannels,
        early: bool = False,
        serial: bool = False,
        on_first_audio: Callable[[AgentTurn], None] | None = None,
        turn_timeout_s: float = 30.0,
        utterance_id: str = "",
        session_id: str = "",
    ) -> None:
        self.turn_id = turn_id
        self.stage_id = stage_id
        self.number = number
        self.text = text
        self.timeline = timeline
        self.llm_events: asyncio.Queue[llm_pb2.ConverseResponse] = asyncio.Queue()
        self.tts_events: asyncio.Queue[tts_pb2.SynthesizeResponse] = asyncio.Queue()
        self.reply = ""
        self.provider = ""
        self.discarded = False
        self.failed = False
        self.early = early
        self.serial = serial
        self._channels = channels
        self._on_first_audio = on_first_audio
        self._timeout_s = turn_timeout_s
        self._utterance_id = utterance_id
        self._session_id = session_id
        self._trace_context: audio_pb2.TraceContext | None = None
        self._linked = False
        self._spoken = _Spoken()
        self._held: list[Item] | None = [] if early or serial else None
        self._audio_out: AudioOut = Pcm16Out()
        self._released = asyncio.Event()
        self._emit_lock = asyncio.Lock()
        if self._held is None:
            self._released.set()

    def playing(self) -> bool:
        """Whether the client may still be playing this turn's audio."""
        return self._spoken.playing()

    def playback_ends_at(self) -> float:
        """When the client will have played all the audio sent so far (monotonic clock)."""
        spoken = self._spoken
        if not spoken.samples_sent:
            return time.perf_counter()
        return spoken.first_sent_at + spoken.samples_sent / max(spoken.sample_rate, 1)

    @property
    def held(self) -> bool:
        """Whether the turn still holds back what it would send to the client."""
        return self._held is not None

    async def release(self) -> None:
        """The turn is confirmed: send what was held, in order, and everything after it."""
        self._link_utterance()
        async with self._emit_lock:
            pending, self._held = self._held or [], None
            for item in pending:
                await self._send(item)
        self._released.set()

    async def run(self) -> None:
        with tracer.start_as_current_span(
            "voice.turn",
            start_time=self.timeline.origin_ns,
            attributes={
                "voice.turn_id": self.turn_id,
                "voice.early_start": self.early,
                "voice.pipeline": "serial" if self.serial else "streaming",
            },
        ) as span:
            context = trace_context_message()
            self._trace_context = context
            span.set_attribute("voice.session_id", self._session_id)
            if not self.early:
                self._link_utterance()
            try:
                self._channels.send_llm(
                    llm_pb2.ConverseRequest(
                        turn=llm_pb2.UserTurn(
                            turn_id=self.stage_id, text=self.text, trace_context=context
                        )
                    )
                )
                self.timeline.mark("llm_start")
                text_pump = asyncio.create_task(self._pump_text(context))
                try:
                    await self._pump_audio()
                finally:
                    text_pump.cancel()
                    await asyncio.gather(text_pump, return_exceptions=True)
                await self._released.wait()
                if self.failed:
                    self._record(span, "failed")
                    return
            except asyncio.CancelledError:
                self._cancel_stages()
                self._record(span, "discarded" if self.discarded else "interrupted")
                raise
            self.timeline.mark("pipeline_complete")
            span.set_attribute("llm.provider", self.provider)
            self._record(span)
            await self._emit(END_OF_AUDIO)
            await self._emit(event("audio_end", turn_id=self.turn_id))
            await self._emit(
                event("turn_complete", turn_id=self.turn_id, latency=self.timeline.waterfall_ms())
            )
            log.info("%s", self.timeline.summary(self.number))

    def _link_utterance(self) -> None:
        """Tell stt which trace answers the utterance, so its span joins this turn's trace."""
        if self._trace_context is None or not self._utterance_id or self._linked:
            return
        self._linked = True
        self._channels.send_stt(
            stt_pb2.TranscribeRequest(
                control=stt_pb2.TranscribeControl(
                    trace_context=self._trace_context, utterance_id=self._utterance_id
                )
            )
        )

    def _record(self, span: trace.Span, ending: str | None = None) -> None:
        span.set_attribute("voice.turn_number", self.number)
        for name in self.timeline.marks:
            span.add_event(name, timestamp=self.timeline.wall_ns(name))
        if ending is not None:
            span.add_event(ending)
            span.set_attribute("voice.turn_ending", ending)

    async def _emit(self, item: Item) -> None:
        async with self._emit_lock:
            if self._held is not None:
                self._held.append(item)
            else:
                await self._send(item)

    async def _send(self, item: Item) -> None:
        if isinstance(item, str):
            await self._channels.send_text(item)
            return
        if isinstance(item, EndOfAudio):
            for frame in await self._audio_out.flush():
                await self._channels.send_bytes(frame)
            return
        pcm, text = item
        for frame in await self._audio_out.encode(pcm):
            await self._channels.send_bytes(frame)
        self._spoken.add(pcm, text)
        if "first_audio_sent" not in self.timeline.marks:
            self.timeline.mark("first_audio_sent")
            if self._on_first_audio is not None:
                self._on_first_audio(self)

    async def _pump_text(self, context: audio_pb2.TraceContext) -> None:
        """LLM deltas -> client text and TTS input, until the LLM says the turn is done."""
        while True:
            response = await self._next(self.llm_events, "llm")
            if response is None:
                return
            if response.HasField("delta"):
                delta = response.delta.text
                if not self.reply:
                    self.timeline.mark("llm_first_token")
                    self.timeline.mark("tts_start")
                self.reply += delta
                if not self.serial:
                    self._send_tts_text(delta, context)
                await self._emit(event("agent_text", turn_id=self.turn_id, text=delta))
                continue
            done = response.done
            if self.serial and self.reply:
                self._send_tts_text(self.reply, context)
            self.provider = done.provider
            if done.error:
                log.warning("turn %s: llm error: %s", self.turn_id, done.error)
                await self._emit(
                    event("error", code="llm_error", message=done.error, turn_id=self.turn_id)
                )
            self._channels.send_tts(
                tts_pb2.SynthesizeRequest(flush=tts_pb2.FlushTurn(turn_id=self.stage_id))
            )
            return

    async def _next(self, queue: asyncio.Queue[Response], stage: str) -> Response | None:
        """The stage's next response; None (and an error to the client) if it goes quiet."""
        try:
            return await asyncio.wait_for(queue.get(), self._timeout_s)
        except TimeoutError:
            if not self.failed:
                self.failed = True
                log.warning(
                    "turn %s: %s sent nothing for %.0fs", self.turn_id, stage, self._timeout_s
                )
                self._cancel_stages()
                await self._release_quietly()
                await self._channels.send_error(
                    "stage_timeout",
                    f"the {stage} stage did not answer in time",
                    turn_id=self.turn_id,
                )
            return None

    async def _release_quietly(self) -> None:
        if self.held:
            async with self._emit_lock:
                self._held = None
            self._released.set()

    def _send_tts_text(self, text: str, context: audio_pb2.TraceContext) -> None:
        self._channels.send_tts(
            tts_pb2.SynthesizeRequest(
                text=tts_pb2.TextInput(turn_id=self.stage_id, text=text, trace_context=context)
            )
        )

    async def _pump_audio(self) -> None:
        """TTS audio -> client binary frames, until the TTS says the turn's audio has ended."""
        while True:
            response = await self._next(self.tts_events, "tts")
            if response is None:
                return
            kind = response.WhichOneof("event")
            if kind == "start":
                rate = response.start.sample_rate
                self._spoken.sample_rate = rate
                self._audio_out = self._channels.audio_out(rate)
                await self._emit(event("audio_start", turn_id=self.turn_id, sample_rate=rate))
            elif kind == "audio":
                await self._emit((response.audio.audio.pcm, response.audio.text))
            elif kind == "end":
                if response.end.error:
                    await self._emit(
                        event(
                            "error",
                            code="tts_error",
                            message=response.end.error,
                            turn_id=self.turn_id,
                        )
                    )
                if self.serial:
                    await self.release()
                return

    def _cancel_stages(self) -> None:
        self._channels.send_llm(
            llm_pb2.ConverseRequest(
                cancel=llm_pb2.CancelTurn(
                    turn_id=self.stage_id,
                    heard_text=self._spoken.heard_text(),
                    has_heard_text=True,
                    discard=self.discarded,
                )
            )
        )
        self._channels.send_tts(
            tts_pb2.SynthesizeRequest(cancel=tts_pb2.CancelSynthesis(turn_id=self.stage_id))
        )
