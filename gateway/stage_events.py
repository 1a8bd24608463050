"""The stages' responses as turn-machine events (gateway/turns/events.py).

stt speaks in its stream's time (seconds since the stream's first audio); the arrival clock
turns that into when the audio reached the gateway, the clock every other moment is on.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.turns import events as ev
from voice.v1 import llm_pb2, stt_pb2, tts_pb2

Kind = stt_pb2.SpeechEvent


def from_stt(
    response: stt_pb2.TranscribeResponse, arrival_time: Callable[[float], float]
) -> ev.Event | None:
    if response.HasField("speech_event"):
        speech = response.speech_event
        if speech.kind == Kind.KIND_SPEECH_STARTED:
            return ev.SpeechStarted(speech.utterance_id)
        if speech.kind == Kind.KIND_SPEECH_RESUMED:
            return ev.SpeechStarted(speech.utterance_id, resumed=True)
        if speech.kind == Kind.KIND_PAUSE:
            return ev.SpeechPaused(speech.utterance_id)
        if speech.kind == Kind.KIND_END_OF_TURN:
            return ev.UserTurnEnded(speech.utterance_id, arrival_time(speech.stream_time_s))
        return None
    if not response.HasField("transcript"):
        return None
    transcript = response.transcript
    return ev.TranscriptReceived(
        utterance_id=transcript.utterance_id,
        text=transcript.text,
        final=transcript.final,
        at_pause=transcript.at_pause,
        duration_s=transcript.speech_end_s - transcript.speech_start_s,
        speech_end_at=arrival_time(transcript.speech_end_s),
    )


def from_llm(response: llm_pb2.ConverseResponse) -> ev.Event | None:
    if response.HasField("delta"):
        return ev.ReplyText(response.delta.turn_id, response.delta.text)
    if response.HasField("score"):
        score = response.score
        return ev.EndScored(score.turn_id, score.p_end, available=score.available)
    if response.HasField("done"):
        done = response.done
        return ev.ReplyDone(
            done.turn_id, provider=done.provider, error=done.error, end_call=done.end_call
        )
    if response.HasField("tool_call"):
        call = response.tool_call
        return ev.ToolCalled(
            call.turn_id, call.call_id, call.name, call.arguments_json, call.side_effects
        )
    if response.HasField("tool_result"):
        result = response.tool_result
        return ev.ToolFinished(
            result.turn_id,
            result.call_id,
            result.name,
            result.outcome,
            result.result,
            result.duration_ms,
        )
    return None


def from_tts(response: tts_pb2.SynthesizeResponse) -> ev.Event | None:
    kind = response.WhichOneof("event")
    if kind == "start":
        return ev.SpeechAudioStarted(response.start.turn_id, response.start.sample_rate)
    if kind == "audio":
        audio = response.audio
        return ev.SpeechAudio(audio.turn_id, audio.audio.pcm, audio.text)
    if kind == "end":
        return ev.SpeechAudioEnded(response.end.turn_id, error=response.end.error)
    return None
