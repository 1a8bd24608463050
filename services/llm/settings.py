"""The llm service's settings (``LLM_*``, ``GEMINI_API_KEY``), read once from the environment.

How settings are read and checked, and what every process shares, is in ``voice/settings.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from voice.settings import CommonSettings, Env

LLM_PROVIDERS = ("gemini", "local", "demo", "instant")
DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant in a spoken conversation. Your words are read aloud, "
    "so answer in one to three short sentences, and keep the first sentence very short. "
    "Never use markdown, lists, code, emoji or symbols. Write numbers, units and symbols the "
    "way they are spoken. If you do not know something, say so briefly."
)


@dataclass(frozen=True)
class LlmSettings:
    common: CommonSettings
    listen: str
    providers: tuple[str, ...]
    model_path: str
    system_prompt: str
    max_reply_tokens: int
    temperature: float
    context_tokens: int
    parallel: int
    threads: int
    nice: int
    queue_limit: int
    batch_tokens: int
    gemini_model: str
    gemini_base_url: str
    gemini_timeout_s: float
    gemini_thinking_budget: int
    gemini_api_key: str = field(default="", repr=False)
    # The agent (services/llm/tools/agent.py, docs/agent.md): its file, or the built-in tools.
    agent_file: str = ""
    tools: tuple[str, ...] = ("current_time", "calculate")
    time_zone: str = ""
    knowledge_dir: str = ""
    tool_filler_ms: int = 700
    tool_filler_text: str = "One moment."
    tool_temperature: float = 0.0
    knowledge_prefetch: bool = True

    @staticmethod
    def from_env(environ: Mapping[str, str] | None = None) -> LlmSettings:
        env = Env(environ)
        api_key = env.text("", "GEMINI_API_KEY", "GOOGLE_API_KEY")
        # Gemini leads the default order only when there is a key to use it with.
        default_providers = ("gemini", "local", "demo") if api_key else ("local", "demo")
        settings = LlmSettings(
            common=CommonSettings.read(env, metrics_port=9102),
            listen=env.address("127.0.0.1:50052", "LLM_LISTEN"),
            providers=env.items(default_providers, "LLM_PROVIDERS"),
            model_path=env.text("", "LLM_MODEL_PATH"),
            system_prompt=env.text(DEFAULT_SYSTEM_PROMPT, "LLM_SYSTEM_PROMPT"),
            max_reply_tokens=env.integer(96, "LLM_MAX_REPLY_TOKENS", low=8, high=4096),
            temperature=env.number(0.6, "LLM_TEMPERATURE", low=0.0, high=2.0),
            context_tokens=env.integer(4096, "LLM_CONTEXT_TOKENS", low=512, high=131072),
            parallel=env.integer(2, "LLM_PARALLEL", low=1, high=64),
            threads=env.integer(0, "LLM_THREADS", low=0, high=256),
            nice=env.integer(10, "LLM_NICE", low=0, high=19),
            queue_limit=env.integer(8, "LLM_QUEUE_LIMIT", low=0, high=10000),
            batch_tokens=env.integer(128, "LLM_BATCH_TOKENS", low=16, high=4096),
            gemini_model=env.text("gemini-2.5-flash", "LLM_GEMINI_MODEL"),
            gemini_base_url=env.text("", "LLM_GEMINI_BASE_URL"),
            gemini_timeout_s=env.number(5.0, "LLM_GEMINI_TIMEOUT_S", low=0.1, high=300.0),
            gemini_thinking_budget=env.integer(0, "LLM_GEMINI_THINKING_BUDGET", low=-1, high=32768),
            gemini_api_key=api_key,
            agent_file=env.text("", "LLM_AGENT_FILE"),
            tools=env.items(("current_time", "calculate"), "LLM_TOOLS"),
            time_zone=env.text("", "LLM_TIME_ZONE"),
            knowledge_dir=env.text("", "LLM_KNOWLEDGE_DIR"),
            tool_filler_ms=env.integer(700, "LLM_TOOL_FILLER_MS", low=0, high=60000),
            tool_filler_text=env.text("One moment.", "LLM_TOOL_FILLER_TEXT"),
            tool_temperature=env.number(0.0, "LLM_TOOL_TEMPERATURE", low=0.0, high=2.0),
            knowledge_prefetch=env.flag(True, "LLM_KNOWLEDGE_PREFETCH"),
        )
        unknown = [p for p in settings.providers if p not in LLM_PROVIDERS]
        if unknown or not settings.providers:
            env.problem(
                f"LLM_PROVIDERS: unknown or empty {unknown}; choose from {', '.join(LLM_PROVIDERS)}"
            )
        if len(set(settings.providers)) != len(settings.providers):
            env.problem(f"LLM_PROVIDERS={','.join(settings.providers)}: a provider is listed twice")
        base_url = settings.gemini_base_url
        if base_url and not base_url.startswith(("http://", "https://")):
            env.problem(f"LLM_GEMINI_BASE_URL={base_url!r}: expected an http:// or https:// URL")
        if settings.max_reply_tokens * 2 > settings.context_tokens:
            env.problem("LLM_MAX_REPLY_TOKENS must be at most half of LLM_CONTEXT_TOKENS")
        _check_agent(settings, env)
        env.check("llm")
        return settings


def _check_agent(settings: LlmSettings, env: Env) -> None:
    """The agent's settings: a file and a folder that exist, a time zone that is known."""
    from services.llm.tools.builtins import BUILTIN_NAMES

    unknown = [t for t in settings.tools if t not in BUILTIN_NAMES and t != "none"]
    if unknown:
        env.problem(f"LLM_TOOLS: unknown {unknown}; choose from {', '.join(BUILTIN_NAMES)}, none")
    if settings.agent_file and not Path(settings.agent_file).is_file():
        env.problem(f"LLM_AGENT_FILE={settings.agent_file}: no such file")
    if settings.knowledge_dir and not Path(settings.knowledge_dir).is_dir():
        env.problem(f"LLM_KNOWLEDGE_DIR={settings.knowledge_dir}: no such folder")
    if settings.time_zone:
        try:
            ZoneInfo(settings.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            env.problem(
                f"LLM_TIME_ZONE={settings.time_zone!r}: not a known time zone (e.g. Europe/Paris)"
            )
