"""Run the llm service: ``python -m services.llm``."""

from __future__ import annotations

import asyncio
import logging
import os

from services.llm.demo import DemoModel
from services.llm.engine import LanguageModel
from services.llm.fallback import FallbackChain
from services.llm.instant import InstantModel
from services.llm.local_tools import system_with_tools
from services.llm.servicer import LanguageModelServicer
from services.llm.settings import LlmSettings
from services.llm.tool_loop import ToolLoop
from services.llm.tools.agent import AgentFileError, load_agent
from voice.errors import SettingsError
from voice.serving import Started, run_service
from voice.v1 import llm_pb2, llm_pb2_grpc

log = logging.getLogger("llm")


async def build_providers(settings: LlmSettings, warm_prompt: str = "") -> list[LanguageModel]:
    """The providers in LLM_PROVIDERS order; gemini without a key is skipped, not fatal.

    ``warm_prompt``: the system prompt the local model reads into its slots ahead of time
    (the agent's, with its tools)."""
    providers: list[LanguageModel] = []
    for name in settings.providers:
        if name == "gemini":
            if not settings.gemini_api_key:
                log.warning(
                    "provider gemini skipped: no API key (set GEMINI_API_KEY or GOOGLE_API_KEY)"
                )
                continue
            from services.llm.gemini import GeminiModel

            gemini = GeminiModel.from_settings(settings)
            log.info(
                "provider gemini: model %s%s",
                gemini.model,
                f" at {settings.gemini_base_url}" if settings.gemini_base_url else "",
            )
            providers.append(gemini)
        elif name == "local":
            from services.llm.local import LocalLlama

            local = await asyncio.to_thread(LocalLlama, settings)
            await asyncio.to_thread(local.warm_up, warm_prompt or settings.system_prompt)
            providers.append(local)
        elif name == "demo":
            providers.append(DemoModel())
        elif name == "instant":
            providers.append(InstantModel())
    if not providers:
        raise SettingsError(
            f"LLM_PROVIDERS={','.join(settings.providers)}: no provider can run "
            "(gemini needs GEMINI_API_KEY or GOOGLE_API_KEY); add local or demo"
        )
    return providers


async def close_providers(providers: list[LanguageModel]) -> None:
    for provider in providers:
        close = getattr(provider, "aclose", None)
        if close is not None:
            await close()


async def start(settings: LlmSettings) -> Started[LanguageModelServicer]:
    """The providers loaded (the local model warmed up), and the servicer over their chain."""
    if settings.nice:
        # Generation is the bulk work; speech recognition and synthesis are latency-critical.
        os.nice(settings.nice)
    try:
        agent = await load_agent(
            settings.agent_file,
            builtins=settings.tools,
            time_zone=settings.time_zone,
            knowledge_dir=settings.knowledge_dir,
        )
    except AgentFileError as error:
        raise SettingsError(f"LLM_AGENT_FILE: {error}") from error
    system_prompt = agent.definition.instructions or settings.system_prompt
    warm_prompt = system_with_tools(system_prompt, agent.tools.specs) if agent.tools else ""
    try:
        providers = await build_providers(settings, warm_prompt)
    except BaseException:
        await agent.aclose()
        raise
    chain = FallbackChain(providers)
    log.info("providers, in order: %s", chain.name)
    # The history leaves room in each slot's context for the reply.
    history_budget = settings.context_tokens - settings.max_reply_tokens
    tool_loop = ToolLoop(
        agent.tools,
        filler_s=settings.tool_filler_ms / 1000,
        filler_text=settings.tool_filler_text,
        prefetch=settings.knowledge_prefetch,
    )
    servicer = LanguageModelServicer(
        chain,
        system_prompt,
        history_budget,
        settings.max_reply_tokens,
        tool_loop=tool_loop,
        workers=settings.parallel,
    )

    async def stop() -> None:
        await close_providers(providers)
        await agent.aclose()

    return Started(servicer, stop)


if __name__ == "__main__":
    run_service(
        "llm",
        llm_pb2.DESCRIPTOR.services_by_name["LanguageModelService"],
        llm_pb2_grpc.add_LanguageModelServiceServicer_to_server,
        LlmSettings.from_env,
        start,
    )
