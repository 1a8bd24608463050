"""Runs a session's turn machine: events in from a queue, actions carried out in order.

The stages' responses, timer expiries and stage health become events (``post``); one task takes
them in order, steps the machine with the time, and carries out what it returns: client output
through the transport, requests on the stage links, timers on the event loop, and each reply's
span, log line and metrics. Nothing here decides anything about turns.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from gateway.metrics import GatewayMetrics
from gateway.timeline import Timeline
from gateway.transports.base import Transport
from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.machine import TurnMachine
from voice.telemetry import trace_context_message
from voice.v1 import audio_pb2, llm_pb2, stt_pb2, tts_pb2

log = logging.getLogger(__name__)
tracer = trace.get_tracer("voice.gateway")


@dataclass
class StageSenders:
    """Where requests for each stage go (the session's stage links)."""

    stt: Callable[[stt_pb2.TranscribeRequest], None]
    llm: Callable[[llm_pb2.ConverseRequest], None]
    tts: Callable[[tts_pb2.SynthesizeRequest], None]


def wall_offset_ns() -> int:
    """Wall-clock nanoseconds minus monotonic-clock (``time.perf_counter``) nanoseconds, now.

    Taken once per reply, so all the reply's moments keep their order on the wall clock."""
    return time.time_ns() - time.perf_counter_ns()


def wall_ns(at: float, offset_ns: int) -> int:
    """A time on the monotonic clock as wall-clock nanoseconds."""
    return offset_ns + int(at * 1e9)


class TurnDriver:
    def __init__(
        self,
        machine: TurnMachine,
        transport: Transport,
        stages: StageSenders,
        metrics: GatewayMetrics,
    ) -> None:
        self.machine = machine
        self._transport = transport
        self._stages = stages
        self._metrics = metrics
        self._queue: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._timers: dict[act.Timer, asyncio.TimerHandle] = {}
        # Each reply's span, its trace context for the stages, and its wall-clock offset.
        self._spans: dict[str, tuple[trace.Span, audio_pb2.TraceContext, int]] = {}
        self._idle = asyncio.Event()
        self._closing: set[asyncio.Task[None]] = set()
        self._idle.set()
        self._state = machine.state.value
        self._name = machine.policy.session_id
        metrics.session_states.labels(self._state).inc()
        self._handlers: dict[type, Callable[[Any], Any]] = {
            act.AskLlm: self._ask_llm,
            act.CancelLlm: self._cancel_llm,
            act.ConfirmLlm: lambda a: self._stages.llm(
                llm_pb2.ConverseRequest(confirm=llm_pb2.ConfirmTurn(turn_id=a.attempt))
            ),
            act.EndSession: self._end_session,
            act.Speak: self._speak,
            act.FlushSpeech: lambda a: self._stages.tts(
                tts_pb2.SynthesizeRequest(flush=tts_pb2.FlushTurn(turn_id=a.attempt))
            ),
            act.CancelSpeech: lambda a: self._stages.tts(
                tts_pb2.SynthesizeRequest(cancel=tts_pb2.CancelSynthesis(turn_id=a.attempt))
            ),
            act.LinkUtterance: self._link,
            act.SetTimer: self._set_timer,
            act.CancelTimer: self._cancel_timer,
            act.ReplyStarted: self._reply_started,
            act.ReplyFinished: self._reply_finished,
            act.StateChanged: self._state_changed,
            act.Count: self._count,
            act.ObserveBargeIn: lambda a: self._metrics.barge_in.observe(
                time.perf_counter() - a.decided_at
            ),
            act.BargeInDecided: self._barge_in_decided,
            act.Log: lambda a: log.log(logging.getLevelName(a.level.upper()), "%s", a.message),
        }

    def post(self, event: ev.Event) -> None:
        self._queue.put_nowait(event)

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self.handle(event)
            except Exception:
                # A bug or a broken encoder must cost the reply, not the session.
                log.exception("%s: carrying out %s failed", self._name, type(event).__name__)
                await self.handle(ev.ReplyBroke())

    async def handle(self, event: ev.Event) -> None:
        for action in self.machine.step(event, time.perf_counter()):
            if isinstance(action, act.SendEvent | act.OpenAudio | act.SendAudio | act.CloseAudio):
                if isinstance(action, act.SendEvent) and action.type == "error":
                    self._metrics.errors.labels(str(action.fields.get("code"))).inc()
                await self._transport.send(action)
            else:
                self._handlers[type(action)](action)
        if self.machine.busy:
            self._idle.clear()
        else:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> None:
        """Until the current reply is over (a graceful drain), at most ``timeout_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.info("drain: a reply still running after %.0f s", timeout_s)

    async def close(self) -> None:
        """The session ends: the machine cancels what runs; timers stop; the gauge drops."""
        await self.handle(ev.SessionClosed())
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        for span, _, _ in self._spans.values():
            span.end()
        self._spans.clear()
        self._metrics.session_states.labels(self._state).dec()

    # ----------------------------------------------------------------- stages

    def _context(self, attempt: str) -> audio_pb2.TraceContext | None:
        entry = self._spans.get(attempt)
        return None if entry is None else entry[1]

    def _ask_llm(self, action: act.AskLlm) -> None:
        turn = llm_pb2.UserTurn(
            turn_id=action.attempt,
            text=action.text,
            trace_context=self._context(action.attempt),
            score_end=action.score_end,
            early=action.early,
        )
        self._stages.llm(llm_pb2.ConverseRequest(turn=turn))

    def _cancel_llm(self, action: act.CancelLlm) -> None:
        cancel = llm_pb2.CancelTurn(
            turn_id=action.attempt,
            # The client's account of its playback (a phone's marks) where it gives one.
            heard_text=self._transport.heard_text(action.heard_text),
            has_heard_text=True,
            discard=action.discard,
        )
        self._stages.llm(llm_pb2.ConverseRequest(cancel=cancel))

    def _end_session(self, action: act.EndSession) -> None:
        """The agent hung up: the transport closes once the goodbye has played (by the clock,
        or by what its client reports of its playback: a phone's marks)."""
        log.info("%s: %s", self._name, action.reason)
        task = asyncio.create_task(self._transport.hang_up(at=action.at, reason=action.reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _speak(self, action: act.Speak) -> None:
        text = tts_pb2.TextInput(
            turn_id=action.attempt, text=action.text, trace_context=self._context(action.attempt)
        )
        self._stages.tts(tts_pb2.SynthesizeRequest(text=text))

    def _link(self, action: act.LinkUtterance) -> None:
        control = stt_pb2.TranscribeControl(
            trace_context=self._context(action.attempt), utterance_id=action.utterance_id
        )
        self._stages.stt(stt_pb2.TranscribeRequest(control=control))

    # ----------------------------------------------------------------- timers

    def _set_timer(self, action: act.SetTimer) -> None:
        delay = max(action.at - time.perf_counter(), 0.0)
        loop = asyncio.get_running_loop()
        self._timers[action.timer] = loop.call_later(delay, self._fire, action.timer)

    def _fire(self, timer: act.Timer) -> None:
        self._timers.pop(timer, None)
        self.post(ev.TimerExpired(timer))

    def _cancel_timer(self, action: act.CancelTimer) -> None:
        handle = self._timers.pop(action.timer, None)
        if handle is not None:
            handle.cancel()

    # ----------------------------------------------------------------- spans, metrics, logs

    def _reply_started(self, action: act.ReplyStarted) -> None:
        offset = wall_offset_ns()
        span = tracer.start_span(
            "voice.turn",
            start_time=wall_ns(action.origin, offset),
            attributes={
                "voice.turn_id": action.turn_id,
                "voice.early_start": action.early,
                "voice.pipeline": "serial" if action.serial else "streaming",
                "voice.session_id": self.machine.policy.session_id,
            },
        )
        with trace.use_span(span, end_on_exit=False):
            context = trace_context_message()
        self._spans[action.attempt] = (span, context, offset)

    def _reply_finished(self, action: act.ReplyFinished) -> None:
        timeline = Timeline(action.marks["audio_received"])
        for name, at in action.marks.items():
            timeline.mark(name, at)
        entry = self._spans.pop(action.attempt, None)
        if entry is not None:
            span, _, offset = entry
            if action.ending == "complete":
                span.set_attribute("llm.provider", action.provider)
            span.set_attribute("voice.turn_number", action.number)
            if action.end_reason:
                span.set_attribute("voice.end_of_turn.reason", action.end_reason)
            if action.end_score is not None:
                span.set_attribute("voice.end_of_turn.score", action.end_score)
            for name, at in sorted(action.marks.items(), key=lambda item: item[1]):
                span.add_event(name, timestamp=wall_ns(at, offset))
            if action.ending != "complete":
                span.add_event(action.ending)
                span.set_attribute("voice.turn_ending", action.ending)
            span.end()
        if action.ending in ("complete", "failed"):
            self._metrics.observe_waterfall(timeline.waterfall_ms())
        if action.ending == "complete":
            log.info("%s", timeline.summary(action.number))

    def _barge_in_decided(self, action: act.BargeInDecided) -> None:
        """A barge-in step (ducked, resumed:<why>, interrupted) as an event on the reply's span."""
        entry = self._spans.get(action.attempt)
        if entry is not None:
            span, _, offset = entry
            decision, _, why = action.decision.partition(":")
            attributes = {"voice.barge_in.reason": why} if why else {}
            span.add_event(f"barge_in.{decision}", attributes, timestamp=wall_ns(action.at, offset))

    def _state_changed(self, action: act.StateChanged) -> None:
        log.debug("%s: %s -> %s", self.machine.policy.session_id, action.old, action.new)
        self._metrics.session_states.labels(action.old).dec()
        self._metrics.session_states.labels(action.new).inc()
        self._state = action.new

    def _count(self, action: act.Count) -> None:
        if action.metric == "turns":
            self._metrics.turns.labels(action.label).inc()
        elif action.metric == "early_starts":
            self._metrics.early_starts.labels(action.label).inc()
        elif action.metric == "interruptions":
            self._metrics.interruptions.inc()
