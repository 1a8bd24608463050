"""Run the tts service: ``python -m services.tts``."""

from __future__ import annotations

import asyncio
import sys

from services.tts.instant import InstantEngine
from services.tts.piper import PiperEngine
from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from voice.errors import SettingsError
from voice.models import ModelUnavailableError
from voice.serving import serve
from voice.settings import TtsSettings
from voice.telemetry import setup_logging, setup_tracing
from voice.v1 import tts_pb2, tts_pb2_grpc


async def main() -> None:
    settings = TtsSettings.from_env()
    setup_logging(settings.common.log_level)
    provider = setup_tracing("tts")
    engine: PiperEngine | InstantEngine
    if settings.engines[0] == "instant":
        engine = InstantEngine()
    else:
        engine = await asyncio.to_thread(PiperEngine, settings.threads)
        await asyncio.to_thread(engine.warm_up)
    servicer = TextToSpeechServicer(
        engine,
        ChunkingConfig(
            settings.first_chunk_min_words, settings.first_chunk_max_words, settings.frame_ms
        ),
    )

    async def on_stop() -> None:
        servicer.shutdown()
        if provider is not None:
            provider.shutdown()

    await serve(
        name="tts",
        listen=settings.listen,
        service_names=[tts_pb2.DESCRIPTOR.services_by_name["TextToSpeechService"].full_name],
        register=lambda server: tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(
            servicer, server
        ),
        on_stop=on_stop,
    )


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (SettingsError, ModelUnavailableError) as error:
        print(f"tts: {error}", file=sys.stderr)
        sys.exit(2)
