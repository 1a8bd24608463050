"""The gRPC face of the stt service: proto messages in and out of a TranscriptionStream."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import grpc

from services.stt.engine import (
    MODEL_SAMPLE_RATE,
    AudioInput,
    Decoder,
    FlushInput,
    LanguageDecoder,
    ResetInput,
    SpeechEvent,
    SpeechEventKind,
    StreamInput,
    Transcript,
    TranscriptEvent,
    VoiceActivityDetector,
    primary_language,
)
from services.stt.pool import DecodePool
from services.stt.streaming import StreamConfig, TranscriptionStream
from services.stt.tracing import UtteranceTracer
from voice.audio import Resampler, pcm16_to_float
from voice.errors import InvalidRequestError, ResourceExhaustedError
from voice.load import LoadTracker
from voice.streams import open_stream, sample_rate
from voice.v1 import stt_pb2, stt_pb2_grpc

log = logging.getLogger(__name__)

MAX_END_OF_TURN_MS = 10_000

_KIND_TO_PROTO = {
    SpeechEventKind.SPEECH_STARTED: stt_pb2.SpeechEvent.KIND_SPEECH_STARTED,
    SpeechEventKind.PAUSE: stt_pb2.SpeechEvent.KIND_PAUSE,
    SpeechEventKind.END_OF_TURN: stt_pb2.SpeechEvent.KIND_END_OF_TURN,
    SpeechEventKind.SPEECH_RESUMED: stt_pb2.SpeechEvent.KIND_SPEECH_RESUMED,
}
# A longer audio chunk is refused: audio must stream as it is captured.
MAX_CHUNK_S = 1.0


def stream_language(requested: str, decoder: object) -> str:
    """The language a stream's decodes are asked for, from its config's ``language``.

    Empty when none was asked for, or when the decoder does not look at the language. Raises
    ``ValueError`` with a message for the client when the model cannot transcribe it.
    """
    if not requested.strip() or not isinstance(decoder, LanguageDecoder):
        return ""
    language = primary_language(requested)
    if language in decoder.languages:
        return language
    if decoder.english_only:
        raise ValueError(
            f"language {requested!r} is not supported: stt runs {decoder.name}, which "
            "transcribes English only (language 'en', or none)"
        )
    examples = [code for code in ("en", "de", "fr", "es", "ja", "zh") if code in decoder.languages]
    raise ValueError(
        f"language {requested!r} is not one that stt's model ({decoder.name}) transcribes; "
        f"use a Whisper language code such as {', '.join(examples)}"
    )


def to_proto(event: TranscriptEvent) -> stt_pb2.TranscribeResponse:
    if isinstance(event, SpeechEvent):
        return stt_pb2.TranscribeResponse(
            speech_event=stt_pb2.SpeechEvent(
                kind=_KIND_TO_PROTO[event.kind],
                utterance_id=event.utterance_id,
                stream_time_s=event.stream_time_s,
                speech_end_s=event.speech_end_s,
            )
        )
    return stt_pb2.TranscribeResponse(
        transcript=stt_pb2.Transcript(
            utterance_id=event.utterance_id,
            text=event.text,
            final=event.final,
            stable_text=event.stable_text,
            speech_start_s=event.speech_start_s,
            speech_end_s=event.speech_end_s,
            decode_ms=event.decode_ms,
            at_pause=event.at_pause,
        )
    )


class SpeechToTextServicer(stt_pb2_grpc.SpeechToTextServiceServicer):
    def __init__(
        self,
        decoder: Decoder,
        vad_factory: Callable[[], VoiceActivityDetector],
        config: StreamConfig,
        decode_workers: int = 2,
        max_streams: int = 32,
    ) -> None:
        self._vad_factory = vad_factory
        self._decoder = decoder
        self._config = config
        # One model shared by every stream, decoded on a bounded pool of workers.
        self.pool = DecodePool(decoder, decode_workers)
        self._vad_executor = ThreadPoolExecutor(2, thread_name_prefix="vad")
        self.max_streams = max_streams
        self.active_streams = 0
        self.model_name = str(getattr(decoder, "description", type(decoder).__name__))
        # The load report's critical step: an urgent decode (at a pause, or the final one).
        self.load = LoadTracker(
            "stt",
            workers=decode_workers,
            max_streams=max_streams,
            active_streams=lambda: self.active_streams,
            queued=lambda: self.pool.queued,
        )

    async def Transcribe(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[stt_pb2.TranscribeRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[stt_pb2.TranscribeResponse]:
        opened = await open_stream(request_iterator, context, self._accept)
        if opened is None:
            return
        session_id, rate, language, config = opened
        stream = TranscriptionStream(
            self.pool, self._vad_factory, config, self._vad_executor, language
        )
        self.active_streams += 1
        log.info(
            "stream opened (session %s, %d Hz, language %s, %d active)",
            session_id,
            rate,
            language or "default",
            self.active_streams,
        )
        errors: list[str] = []
        tracer = UtteranceTracer(session_id, self.model_name)
        try:
            resampler = Resampler(rate, MODEL_SAMPLE_RATE)
            inputs = self._inputs(request_iterator, resampler, rate, errors, tracer)
            async for event in stream.transcribe(inputs):
                tracer.observe(event)
                if isinstance(event, Transcript) and (event.final or event.at_pause):
                    self.load.record(event.decode_ms)
                yield to_proto(event)
            if errors:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, errors[0])
        finally:
            self.active_streams -= 1
            log.info("stream closed (session %s, %d active)", session_id, self.active_streams)

    def _accept(self, config: stt_pb2.TranscribeConfig) -> tuple[str, int, str, StreamConfig]:
        """The stream's session id, sample rate, language and settings, or why it is refused."""
        rate = sample_rate(config.sample_rate, MODEL_SAMPLE_RATE)
        stream_config = self._stream_config(config.end_of_turn_ms)
        try:
            language = stream_language(config.language, self._decoder)
        except ValueError as error:
            raise InvalidRequestError(str(error)) from error
        if self.active_streams >= self.max_streams:
            raise ResourceExhaustedError(
                f"stt is serving its maximum of {self.max_streams} streams (STT_MAX_STREAMS)"
            )
        return config.session_id, rate, language, stream_config

    def _stream_config(self, end_of_turn_ms: int) -> StreamConfig:
        """The service's stream settings, with the stream's own end-of-turn silence if it asks."""
        if not end_of_turn_ms:
            return self._config
        pause_ms = round(self._config.endpoint.pause_s * 1000)
        if not pause_ms <= end_of_turn_ms <= MAX_END_OF_TURN_MS:
            raise InvalidRequestError(
                f"end_of_turn_ms must be from the pause ({pause_ms} ms, STT_PAUSE_MS) to "
                f"{MAX_END_OF_TURN_MS} (got {end_of_turn_ms})"
            )
        endpoint = replace(self._config.endpoint, end_of_turn_s=end_of_turn_ms / 1000)
        return replace(self._config, endpoint=endpoint)

    @staticmethod
    async def _inputs(
        requests: AsyncIterator[stt_pb2.TranscribeRequest],
        resampler: Resampler,
        rate: int,
        errors: list[str],
        tracer: UtteranceTracer,
    ) -> AsyncIterator[StreamInput]:
        max_bytes = int(rate * MAX_CHUNK_S) * 2
        async for request in requests:
            kind = request.WhichOneof("request")
            if kind == "audio":
                if len(request.audio.pcm) % 2:
                    errors.append("audio.pcm must be PCM16: an even number of bytes")
                    return
                if len(request.audio.pcm) > max_bytes:
                    errors.append(
                        f"audio chunk of {len(request.audio.pcm)} bytes is over {MAX_CHUNK_S:g} s "
                        f"at {rate} Hz ({max_bytes} bytes): send audio as it is captured, in "
                        "chunks of 10 to 200 ms"
                    )
                    return
                pcm = resampler.process(request.audio.pcm)
                if pcm:
                    yield AudioInput(pcm16_to_float(pcm))
            elif kind == "control":
                action = request.control.action
                if action == stt_pb2.TranscribeControl.ACTION_FLUSH:
                    yield FlushInput()
                elif action == stt_pb2.TranscribeControl.ACTION_RESET:
                    yield ResetInput()
                elif request.control.HasField("trace_context"):
                    tracer.attach(request.control.utterance_id, request.control.trace_context)
            else:
                errors.append(f"unexpected message '{kind}' after the config")
                return

    def shutdown(self) -> None:
        self.pool.shutdown()
        self._vad_executor.shutdown(wait=False, cancel_futures=True)
