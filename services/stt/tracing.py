"""The stt side of a turn's trace: one span per utterance, a child of the gateway's turn span.

The gateway learns which turn answers an utterance only once stt has finished with it, so the
span is recorded afterwards, with the times noted as the events happened: the gateway sends
the turn's trace context (a control message naming the utterance), and the span is written
then, or as soon as the final transcript exists.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from opentelemetry import trace

from services.stt.engine import SpeechEvent, Transcript, TranscriptEvent
from voice.telemetry import context_from_message
from voice.v1 import audio_pb2

tracer = trace.get_tracer("voice.stt")

KEPT_UTTERANCES = 16


@dataclass
class _Utterance:
    events: list[tuple[str, int]] = field(default_factory=list)
    final: Transcript | None = None
    context: audio_pb2.TraceContext | None = None
    recorded: bool = False


class UtteranceTracer:
    def __init__(self, session_id: str, model: str) -> None:
        self._session_id = session_id
        self._model = model
        self._utterances: OrderedDict[str, _Utterance] = OrderedDict()

    def _get(self, utterance_id: str) -> _Utterance:
        utterance = self._utterances.get(utterance_id)
        if utterance is None:
            utterance = self._utterances[utterance_id] = _Utterance()
            while len(self._utterances) > KEPT_UTTERANCES:
                self._utterances.popitem(last=False)
        return utterance

    def observe(self, event: TranscriptEvent) -> None:
        if not event.utterance_id:
            return
        utterance = self._get(event.utterance_id)
        now = time.time_ns()
        if isinstance(event, SpeechEvent):
            utterance.events.append((event.kind.value, now))
        elif event.final:
            utterance.final = event
            utterance.events.append(("stt_complete", now))
            self._record(event.utterance_id, utterance)
        elif event.at_pause:
            utterance.events.append(("pause_transcript", now))

    def attach(self, utterance_id: str, context: audio_pb2.TraceContext) -> None:
        utterance = self._get(utterance_id)
        utterance.context = context
        self._record(utterance_id, utterance)

    def _record(self, utterance_id: str, utterance: _Utterance) -> None:
        final = utterance.final
        if utterance.recorded or final is None or utterance.context is None or not utterance.events:
            return
        utterance.recorded = True
        start_ns = utterance.events[0][1]
        end_ns = utterance.events[-1][1]
        span = tracer.start_span(
            "stt.utterance",
            context=context_from_message(utterance.context),
            start_time=start_ns,
            attributes={
                "voice.session_id": self._session_id,
                "voice.utterance_id": utterance_id,
                "stt.model": self._model,
                "stt.audio_seconds": round(final.speech_end_s - final.speech_start_s, 3),
                "stt.final_decode_ms": round(final.decode_ms, 1),
            },
        )
        for name, at_ns in utterance.events:
            span.add_event(name, timestamp=at_ns)
        span.end(end_time=end_ns)
