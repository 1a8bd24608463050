"""The Gemini adapter against a local server that speaks Gemini's streaming wire format.

The server listens on 127.0.0.1 and answers ``POST /v1beta/models/{model}:streamGenerateContent
?alt=sse`` with server-sent events, one ``GenerateContentResponse`` JSON per ``data:`` line, or
with Gemini's JSON error body and an HTTP status. The model name picks the behaviour:
``status-NNN`` fails with NNN, ``endless`` streams until the client goes, ``silent`` sends
nothing, ``tool-call`` asks for ``current_time`` until the request carries a function's
response, anything else streams a short reply. Nothing here reaches the real network.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.llm.demo import REPLIES, DemoModel
from services.llm.engine import Message, Turn
from services.llm.fallback import FallbackChain
from services.llm.gemini import GeminiModel, ProviderRejectedError
from services.llm.servicer import LanguageModelServicer
from tests.integration.conftest import serving
from tests.integration.test_llm_servicer import Conversation
from voice.errors import EngineError, ResourceExhaustedError, UpstreamUnavailableError
from voice.v1 import llm_pb2_grpc

pytestmark = [
    pytest.mark.integration,
    # google-genai subclasses aiohttp's ClientSession, which aiohttp discourages.
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

WORDS = ["Hello", " there,", " nice", " to", " hear", " you."]
ERROR_STATUS = {
    400: "INVALID_ARGUMENT",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    api_key: str
    body: dict[str, Any]


@dataclass
class FakeGemini:
    url: str = ""
    requests: list[Seen] = field(default_factory=list)
    chunks_sent: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        model = request.match_info["model"]
        self.requests.append(
            Seen(
                request.path,
                dict(request.query),
                request.headers.get("x-goog-api-key", ""),
                await request.json(),
            )
        )
        if model.startswith("status-"):
            code = int(model.removeprefix("status-"))
            error = {"code": code, "message": f"fake {code}", "status": ERROR_STATUS[code]}
            return web.json_response({"error": error}, status=code)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if model == "endless":
            await self._endless(request, response)
        elif model == "silent":
            await self._wait_for_close(request, seconds=5.0)
        elif model == "tool-call" and not _has_function_response(self.requests[-1].body):
            await self._send(response, _function_call_chunk("current_time", {}))
        else:
            for index, word in enumerate(WORDS):
                await self._send(response, _chunk(word, last=index == len(WORDS) - 1))
                await asyncio.sleep(0.005)
        return response

    async def _send(self, response: web.StreamResponse, chunk: dict[str, Any]) -> None:
        await response.write(b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n")
        self.chunks_sent += 1

    async def _endless(self, request: web.Request, response: web.StreamResponse) -> None:
        # Bounded: 500 chunks 10 ms apart at most, stopping as soon as the client has gone.
        try:
            for index in range(500):
                if _client_gone(request):
                    break
                await self._send(response, _chunk(f" word{index}"))
                await asyncio.sleep(0.01)
        except ConnectionResetError:
            pass
        if _client_gone(request):
            self.closed.set()

    async def _wait_for_close(self, request: web.Request, seconds: float) -> None:
        for _ in range(int(seconds / 0.01)):
            if _client_gone(request):
                self.closed.set()
                return
            await asyncio.sleep(0.01)


def _has_function_response(body: dict[str, Any]) -> bool:
    parts = [part for content in body.get("contents", []) for part in content.get("parts", [])]
    return any("functionResponse" in part for part in parts)


def _function_call_chunk(name: str, args: dict[str, Any]) -> dict[str, Any]:
    call = {"functionCall": {"id": "fc-1", "name": name, "args": args}}
    candidate = {"content": {"parts": [call], "role": "model"}, "finishReason": "STOP"}
    return {"candidates": [candidate], "modelVersion": "gemini-2.5-flash-001"}


def _client_gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


def _chunk(text: str, *, last: bool = False) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": "gemini-2.5-flash-001"}
    if last:
        candidate["finishReason"] = "STOP"
        chunk["usageMetadata"] = {
            "promptTokenCount": 21,
            "candidatesTokenCount": 9,
            "cachedContentTokenCount": 4,
            "totalTokenCount": 30,
        }
    return chunk


@asynccontextmanager
async def fake_gemini() -> AsyncIterator[FakeGemini]:
    fake = FakeGemini()
    app = web.Application()
    app.router.add_post("/v1beta/models/{model:[^/:]+}:streamGenerateContent", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        await runner.cleanup()


def gemini(
    url: str, model: str = "gemini-2.5-flash", timeout_s: float = 5.0, cooldown_s: float = 30.0
) -> GeminiModel:
    return GeminiModel(
        api_key="test-key",
        model=model,
        base_url=url,
        temperature=0.4,
        timeout_s=timeout_s,
        cooldown_s=cooldown_s,
    )


def conversation_turn() -> Turn:
    return Turn(
        (
            Message("system", "Speak briefly."),
            Message("user", "Hi."),
            Message("assistant", "Hello!"),
            Message("user", "Are you there?"),
            Message("user", "Hello?"),
        ),
        max_tokens=48,
        session_id="s1",
    )


async def test_deltas_stream_in_order_and_the_request_is_gemini_shaped() -> None:
    async with fake_gemini() as server:
        model = gemini(server.url)
        turn = conversation_turn()
        deltas = [delta async for delta in model.generate(turn)]
        await model.aclose()
    assert deltas == WORDS
    [seen] = server.requests
    assert seen.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert seen.query == {"alt": "sse"}
    assert seen.api_key == "test-key"
    assert seen.body["systemInstruction"]["parts"] == [{"text": "Speak briefly."}]
    contents = seen.body["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    # Two user messages in a row (an unheard reply) travel as one user turn of two parts.
    assert contents[2]["parts"] == [{"text": "Are you there?"}, {"text": "Hello?"}]
    config = seen.body["generationConfig"]
    assert config["maxOutputTokens"] == 48
    assert config["temperature"] == 0.4
    assert set(config["thinkingConfig"].values()) == {0}
    assert turn.stats.provider == "gemini"
    assert turn.stats.model == "gemini-2.5-flash-001"
    assert (turn.stats.prompt_tokens, turn.stats.completion_tokens) == (21, 9)
    assert turn.stats.cached_tokens == 4


@pytest.mark.parametrize(
    ("status", "error_class", "retryable"),
    [
        (429, ResourceExhaustedError, True),
        (500, UpstreamUnavailableError, True),
        (503, UpstreamUnavailableError, True),
        (400, ProviderRejectedError, False),
        (403, ProviderRejectedError, False),
        (404, ProviderRejectedError, False),
    ],
)
async def test_http_errors_map_to_retryable_or_not(
    status: int, error_class: type[Exception], retryable: bool
) -> None:
    async with fake_gemini() as server:
        model = gemini(server.url, model=f"status-{status}")
        with pytest.raises(error_class) as raised:
            async for _ in model.generate(conversation_turn()):
                pass
        await model.aclose()
    assert raised.value.retryable is retryable  # type: ignore[attr-defined]
    assert str(status) in str(raised.value)
    # One attempt only: the fallback chain is the retry, not backoff inside a voice turn.
    assert len(server.requests) == 1


async def test_closing_the_stream_mid_reply_closes_the_connection() -> None:
    async with fake_gemini() as server:
        model = gemini(server.url, model="endless")
        stream = model.generate(conversation_turn())
        received = [await anext(stream) for _ in range(3)]
        assert received == [" word0", " word1", " word2"]
        assert not server.closed.is_set()
        await stream.aclose()  # type: ignore[attr-defined]
        # The server notices the client has gone and stops writing.
        await asyncio.wait_for(server.closed.wait(), 3.0)
        sent = server.chunks_sent
        await asyncio.sleep(0.05)
        assert server.chunks_sent == sent
        assert sent < 500
        await model.aclose()


async def test_no_first_token_in_time_is_a_retryable_failure() -> None:
    async with fake_gemini() as server:
        model = gemini(server.url, model="silent", timeout_s=0.2)
        with pytest.raises(UpstreamUnavailableError, match="LLM_GEMINI_TIMEOUT_S"):
            async for _ in model.generate(conversation_turn()):
                pass
        await asyncio.wait_for(server.closed.wait(), 3.0)
        await model.aclose()


async def test_a_server_that_cannot_be_reached_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    model = gemini(f"http://127.0.0.1:{port}")
    with pytest.raises(UpstreamUnavailableError, match="unreachable") as raised:
        async for _ in model.generate(conversation_turn()):
            pass
    assert isinstance(raised.value.__cause__, aiohttp.ClientError | OSError)
    await model.aclose()


async def test_the_chain_falls_back_when_gemini_fails_before_its_first_token() -> None:
    async with fake_gemini() as server:
        model = gemini(server.url, model="status-503")
        turn = conversation_turn()
        text = "".join(
            [
                d
                async for d in FallbackChain([model, DemoModel()]).generate(turn)
                if isinstance(d, str)
            ]
        )
        await model.aclose()
    assert len(server.requests) == 1
    assert text == REPLIES["hello"]
    assert turn.stats.provider == "demo"


async def test_the_turn_span_names_the_provider_that_answered() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    async with fake_gemini() as server:
        model = gemini(server.url, model="status-503")
        chain = FallbackChain([model, DemoModel()])
        servicer = LanguageModelServicer(
            chain, "Be brief.", 2000, 64, tracer=provider.get_tracer("test")
        )
        async with serving(
            lambda s: llm_pb2_grpc.add_LanguageModelServiceServicer_to_server(servicer, s)
        ) as channel:
            conversation = Conversation(channel)
            conversation.say("t1", "hello")
            text, done = await conversation.reply()
            conversation.queue.put_nowait(None)
        await model.aclose()
    assert text and not done.error
    assert done.provider == "demo"
    [span] = [s for s in exporter.get_finished_spans() if s.name == "llm.generate"]
    assert span.attributes is not None
    assert span.attributes["llm.provider"] == "demo"
    assert span.attributes["voice.session_id"] == "test"
    assert [event.name for event in span.events] == ["llm_start", "llm_first_token"]


async def test_every_provider_down_is_an_internal_error_naming_each() -> None:
    async with fake_gemini() as server:
        first = gemini(server.url, model="status-503")
        second = gemini(server.url, model="status-400")
        with pytest.raises(EngineError, match="every provider failed") as raised:
            async for _ in FallbackChain([first, second]).generate(conversation_turn()):
                pass
        await first.aclose()
        await second.aclose()
    assert "503" in str(raised.value) and "400" in str(raised.value)


async def test_after_a_retryable_failure_gemini_rests_and_turns_go_straight_on() -> None:
    async with fake_gemini() as server:
        model = gemini(server.url, model="status-503")
        chain = FallbackChain([model, DemoModel()])
        for _ in range(3):
            turn = conversation_turn()
            text = "".join([d async for d in chain.generate(turn) if isinstance(d, str)])
            assert text and turn.stats.provider == "demo"
        await model.aclose()
    assert len(server.requests) == 1


async def test_the_rest_ends_and_gemini_is_tried_again() -> None:
    async with fake_gemini() as server:
        model = gemini(server.url, model="status-429", cooldown_s=0.2)
        attempts: list[tuple[type[Exception], int]] = [
            (ResourceExhaustedError, 1),  # the server says 429
            (UpstreamUnavailableError, 1),  # resting: the server is not asked
            (ResourceExhaustedError, 2),  # after the rest, asked again
        ]
        for index, (error_class, requests) in enumerate(attempts):
            if index == 2:
                await asyncio.sleep(0.3)
            with pytest.raises(error_class):
                async for _ in model.generate(conversation_turn()):
                    pass
            assert len(server.requests) == requests
        await model.aclose()


async def test_a_rejected_request_does_not_make_gemini_rest() -> None:
    async with fake_gemini() as server:
        model = gemini(server.url, model="status-400")
        for _ in range(2):
            with pytest.raises(ProviderRejectedError):
                async for _ in model.generate(conversation_turn()):
                    pass
        await model.aclose()
    assert len(server.requests) == 2
