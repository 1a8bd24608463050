"""Run the stt service: ``python -m services.stt``."""

from __future__ import annotations

import asyncio

from services.stt.endpointing import EndpointConfig
from services.stt.instant import InstantDecoder
from services.stt.servicer import SpeechToTextServicer
from services.stt.settings import SttSettings
from services.stt.streaming import StreamConfig
from services.stt.vad import SileroVoiceActivityDetector
from services.stt.whisper import WhisperDecoder
from voice.serving import Started, run_service
from voice.v1 import stt_pb2, stt_pb2_grpc


def stream_config(settings: SttSettings) -> StreamConfig:
    return StreamConfig(
        endpoint=EndpointConfig(
            threshold=settings.vad_threshold,
            min_speech_s=settings.min_speech_ms / 1000,
            pause_s=settings.pause_ms / 1000,
            end_of_turn_s=settings.end_of_turn_ms / 1000,
            max_utterance_s=settings.max_utterance_s,
        ),
        partial_interval_s=settings.partial_interval_ms / 1000,
    )


async def start(settings: SttSettings) -> Started[SpeechToTextServicer]:
    """The decoder loaded and warmed up, and the servicer around it."""
    decoder: WhisperDecoder | InstantDecoder
    if settings.engine == "instant":
        decoder = InstantDecoder()
    else:
        decoder = WhisperDecoder(settings, workers=settings.decode_workers)
        await asyncio.to_thread(decoder.warm_up)
    servicer = SpeechToTextServicer(
        decoder,
        SileroVoiceActivityDetector,
        stream_config(settings),
        decode_workers=settings.decode_workers,
        max_streams=settings.max_streams,
    )

    async def stop() -> None:
        servicer.shutdown()

    return Started(servicer, stop)


if __name__ == "__main__":
    run_service(
        "stt",
        stt_pb2.DESCRIPTOR.services_by_name["SpeechToTextService"],
        stt_pb2_grpc.add_SpeechToTextServiceServicer_to_server,
        SttSettings.from_env,
        start,
    )
