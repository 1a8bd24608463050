"""Gemini through google-genai: replies streamed from the cloud, failures mapped for the chain.

``client.aio.models.generate_content_stream`` posts to
``{base}/v1beta/models/{model}:streamGenerateContent?alt=sse`` and reads server-sent events,
one ``GenerateContentResponse`` each. ``LLM_GEMINI_BASE_URL`` points the client elsewhere (a
proxy, or a local server in the contract tests).

A voice turn cannot wait out exponential backoff, so the client makes one attempt: the fallback
chain is the retry. A first token that does not come within ``LLM_GEMINI_TIMEOUT_S`` counts as a
failure (the chain moves on), and so does a stream that stalls that long later. HTTP 429 maps to
:class:`ResourceExhaustedError` and 408/5xx or a connection that cannot be made to
:class:`UpstreamUnavailableError` (both retryable); any other 4xx to
:class:`ProviderRejectedError` (not retryable: a bad key or a bad request stays bad).

After a retryable failure before the first token the provider rests for ``COOLDOWN_S``: turns go
straight to the next provider instead of each paying a timeout while Gemini is down or
unreachable. The first turn after the rest tries it again.

The stream is read by a task of its own; closing the generator cancels that task, which
releases the HTTP response at once, so the server sees the connection close.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Sequence

import aiohttp
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from services.llm.engine import Delta, Message, Turn
from services.llm.settings import LlmSettings
from services.llm.tools.spec import ToolCall, ToolSpec
from voice.errors import (
    EngineError,
    ResourceExhaustedError,
    UpstreamUnavailableError,
    VoiceError,
)

log = logging.getLogger(__name__)

API_VERSION = "v1beta"
COOLDOWN_S = 30.0

_Item = types.GenerateContentResponse | BaseException | None
_call_ids = itertools.count(1)


class ProviderRejectedError(EngineError):
    """The provider refused the request (HTTP 4xx other than 408 and 429); retrying won't help."""


def map_error(error: BaseException) -> VoiceError:
    """The project's error for whatever google-genai or the network raised."""
    if isinstance(error, VoiceError):
        return error
    if isinstance(error, genai_errors.APIError):
        detail = f"gemini HTTP {error.code} {error.status or ''}: {error.message or ''}".strip()
        if error.code == 429:
            return ResourceExhaustedError(detail)
        if error.code == 408 or error.code >= 500:
            return UpstreamUnavailableError(detail)
        return ProviderRejectedError(detail)
    if isinstance(error, aiohttp.ClientError | OSError | TimeoutError):
        return UpstreamUnavailableError(f"gemini unreachable: {type(error).__name__}: {error}")
    return EngineError(f"gemini: {type(error).__name__}: {error}")


def to_contents(messages: Sequence[Message]) -> tuple[list[types.Content], str]:
    """Gemini's shape: the system prompt apart, then alternating user and model turns."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    contents: list[types.Content] = []
    for message in messages:
        if message.role == "system":
            continue
        role = "model" if message.role == "assistant" else "user"
        parts = _parts(message)
        last = contents[-1] if contents else None
        if last is not None and last.role == role and last.parts is not None:
            # Two user turns in a row (a reply interrupted before any of it was heard), or a
            # tool's result after another's.
            last.parts.extend(parts)
        else:
            contents.append(types.Content(role=role, parts=parts))
    return contents, system


def _parts(message: Message) -> list[types.Part]:
    """A message's parts: its text, the calls it asked for, or a tool's result."""
    if message.role == "tool":
        response = types.FunctionResponse(
            id=message.tool_call_id or None, name=message.name, response={"result": message.content}
        )
        return [types.Part(function_response=response)]
    parts = [types.Part(text=message.content)] if message.content else []
    for call in message.tool_calls:
        parts.append(
            types.Part(
                function_call=types.FunctionCall(
                    id=call.call_id, name=call.name, args=call.arguments
                )
            )
        )
    return parts or [types.Part(text="")]


def function_declarations(tools: Sequence[ToolSpec]) -> list[types.ToolUnion]:
    """The tools as Gemini's function declarations (native function calling)."""
    if not tools:
        return []
    declarations = [
        types.FunctionDeclaration(
            name=tool.name, description=tool.description, parameters_json_schema=tool.parameters
        )
        for tool in tools
    ]
    return [types.Tool(function_declarations=declarations)]


class GeminiModel:
    name = "gemini"

    def __init__(
        self,
        *,
        api_key: str,
        model: str = "gemini-2.5-flash",
        base_url: str = "",
        temperature: float = 0.6,
        timeout_s: float = 5.0,
        thinking_budget: int = 0,
        cooldown_s: float = COOLDOWN_S,
    ) -> None:
        if not api_key:
            raise ValueError("the gemini provider needs an API key")
        self.model = model
        self._temperature = temperature
        self._timeout_s = timeout_s
        self._thinking_budget = thinking_budget
        self._cooldown_s = cooldown_s
        self._resting_until = 0.0
        self._last_failure = ""
        self._client = genai.Client(
            api_key=api_key,
            vertexai=False,
            http_options=types.HttpOptions(
                base_url=base_url or None,
                api_version=API_VERSION,
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    @classmethod
    def from_settings(cls, settings: LlmSettings) -> GeminiModel:
        return cls(
            api_key=settings.gemini_api_key,
            model=settings.gemini_model,
            base_url=settings.gemini_base_url,
            temperature=settings.temperature,
            timeout_s=settings.gemini_timeout_s,
            thinking_budget=settings.gemini_thinking_budget,
        )

    async def aclose(self) -> None:
        await self._client.aio.aclose()

    def _config(
        self, system: str, max_tokens: int, tools: Sequence[ToolSpec] = ()
    ) -> types.GenerateContentConfig:
        declared = function_declarations(tools)
        return types.GenerateContentConfig(
            system_instruction=system or None,
            # The service runs the tools itself (the tool loop), with deadlines and gating.
            tools=declared or None,
            automatic_function_calling=(
                types.AutomaticFunctionCallingConfig(disable=True) if declared else None
            ),
            max_output_tokens=max_tokens,
            temperature=self._temperature,
            # Thinking delays the first token by seconds; a spoken reply needs none (-1 leaves
            # it to the model).
            thinking_config=(
                types.ThinkingConfig(thinking_budget=self._thinking_budget)
                if self._thinking_budget >= 0
                else None
            ),
        )

    async def generate(self, turn: Turn) -> AsyncIterator[Delta]:
        resting = self._resting_until - time.monotonic()
        if resting > 0:
            raise UpstreamUnavailableError(
                f"gemini skipped for another {resting:.0f}s after: {self._last_failure}"
            )
        contents, system = to_contents(turn.messages)
        config = self._config(system, turn.max_tokens, turn.tools)
        turn.stats.provider = self.name
        turn.stats.model = self.model
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(contents, config, queue), name="gemini-stream")
        started = False
        try:
            while True:
                try:
                    async with asyncio.timeout(self._timeout_s):
                        item = await queue.get()
                except TimeoutError:
                    raise UpstreamUnavailableError(
                        f"gemini sent nothing for {self._timeout_s:g}s (LLM_GEMINI_TIMEOUT_S)"
                    ) from None
                if item is None:
                    return
                if isinstance(item, BaseException):
                    mapped = map_error(item)
                    if mapped is item:
                        raise mapped
                    raise mapped from item
                text = self._read(item, turn)
                if text:
                    started = True
                    yield text
                for call in _function_calls(item):
                    started = True
                    yield call
        except VoiceError as error:
            if not started and error.retryable and self._cooldown_s > 0:
                self._rest(error)
            raise
        finally:
            pump.cancel()
            await asyncio.gather(pump, return_exceptions=True)

    def _rest(self, error: VoiceError) -> None:
        self._resting_until = time.monotonic() + self._cooldown_s
        self._last_failure = str(error)
        log.warning("gemini failed (%s); the next %.0fs of turns skip it", error, self._cooldown_s)

    async def _pump(
        self,
        contents: list[types.Content],
        config: types.GenerateContentConfig,
        queue: asyncio.Queue[_Item],
    ) -> None:
        try:
            stream = await self._client.aio.models.generate_content_stream(
                model=self.model, contents=contents, config=config
            )
            async for chunk in stream:
                queue.put_nowait(chunk)
        except Exception as error:
            queue.put_nowait(error)
        finally:
            queue.put_nowait(None)

    @staticmethod
    def _read(chunk: types.GenerateContentResponse, turn: Turn) -> str:
        usage = chunk.usage_metadata
        if usage is not None:
            turn.stats.prompt_tokens = usage.prompt_token_count or 0
            turn.stats.cached_tokens = usage.cached_content_token_count or 0
            turn.stats.completion_tokens = usage.candidates_token_count or 0
        if chunk.model_version:
            turn.stats.model = chunk.model_version
        if not chunk.candidates:
            feedback = chunk.prompt_feedback
            if feedback is not None and feedback.block_reason is not None:
                raise ProviderRejectedError(f"gemini blocked the prompt: {feedback.block_reason}")
            return ""
        content = chunk.candidates[0].content
        if content is None or not content.parts:
            return ""
        return "".join(part.text for part in content.parts if part.text and not part.thought)


def _function_calls(chunk: types.GenerateContentResponse) -> list[ToolCall]:
    """The function calls in a streamed chunk (Gemini sends each call whole)."""
    if not chunk.candidates or chunk.candidates[0].content is None:
        return []
    calls = []
    for part in chunk.candidates[0].content.parts or []:
        call = part.function_call
        if call is not None and call.name:
            call_id = call.id or f"gemini-{next(_call_ids)}"
            calls.append(ToolCall(call_id, call.name, dict(call.args or {})))
    return calls
