"""Run the tts service: ``python -m services.tts``."""

from __future__ import annotations

import asyncio

from services.tts.cache import AudioCache
from services.tts.chain import EngineChain
from services.tts.engine import SpeechEngine
from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from services.tts.settings import TtsSettings
from voice.serving import Started, run_service
from voice.v1 import tts_pb2, tts_pb2_grpc


async def load_engine(name: str, settings: TtsSettings) -> SpeechEngine:
    """One engine by its TTS_ENGINES name, loaded and warmed up off the event loop."""
    if name == "edge":
        from services.tts.edge import EdgeEngine

        return EdgeEngine(settings.edge_voice, settings.edge_url, settings.edge_timeout_ms / 1000)
    if name == "instant":
        from services.tts.instant import InstantEngine

        return InstantEngine()
    from services.tts.piper import PiperEngine

    piper = await asyncio.to_thread(PiperEngine, settings.threads)
    await asyncio.to_thread(piper.warm_up)
    return piper


def build_chain(engines: list[SpeechEngine], settings: TtsSettings) -> EngineChain:
    budget = int(settings.cache_mb * 1024 * 1024)
    return EngineChain(engines, AudioCache(budget) if budget else None)


async def start(settings: TtsSettings) -> Started[TextToSpeechServicer]:
    """The engines loaded and warmed up, in TTS_ENGINES order, and the servicer over them."""
    engines = [await load_engine(name, settings) for name in settings.engines]
    servicer = TextToSpeechServicer(
        build_chain(engines, settings),
        ChunkingConfig(
            settings.first_chunk_min_words, settings.first_chunk_max_words, settings.frame_ms
        ),
    )
    return Started(servicer, servicer.aclose)


if __name__ == "__main__":
    run_service(
        "tts",
        tts_pb2.DESCRIPTOR.services_by_name["TextToSpeechService"],
        tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server,
        TtsSettings.from_env,
        start,
    )
