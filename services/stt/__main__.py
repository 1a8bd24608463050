"""Run the stt service: ``python -m services.stt``."""

from __future__ import annotations

import asyncio
import logging
import sys

from services.stt.endpointing import EndpointConfig
from services.stt.instant import InstantDecoder
from services.stt.servicer import SpeechToTextServicer
from services.stt.settings import SttSettings
from services.stt.streaming import StreamConfig
from services.stt.vad import SileroVoiceActivityDetector
from services.stt.whisper import WhisperDecoder
from voice.errors import SettingsError
from voice.models import ModelUnavailableError
from voice.serving import serve
from voice.telemetry import setup_logging, setup_tracing
from voice.v1 import stt_pb2, stt_pb2_grpc

log = logging.getLogger("stt")


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


async def main() -> None:
    settings = SttSettings.from_env()
    setup_logging(settings.common.log_level)
    provider = setup_tracing("stt")
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

    async def on_stop() -> None:
        servicer.shutdown()
        if provider is not None:
            provider.shutdown()

    await serve(
        name="stt",
        listen=settings.listen,
        service_names=[stt_pb2.DESCRIPTOR.services_by_name["SpeechToTextService"].full_name],
        register=lambda server: stt_pb2_grpc.add_SpeechToTextServiceServicer_to_server(
            servicer, server
        ),
        on_stop=on_stop,
        metrics_port=settings.common.metrics_port,
        active_streams=lambda: servicer.active_streams,
    )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (SettingsError, ModelUnavailableError) as error:
        print(f"stt: {error}", file=sys.stderr)
        sys.exit(2)
