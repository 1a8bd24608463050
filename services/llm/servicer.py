"""The gRPC face of the llm service: one Converse stream per session, one task per turn.

A turn's failure never ends the session's stream: it comes back as the turn's ``TurnDone`` with
an ``error`` that starts with the matching status code (``invalid_argument:``,
``resource_exhausted:``, ``internal:`` ...). Only a malformed stream (no config first, no
session id, an unexpected message) is refused with ``INVALID_ARGUMENT``.

A cancel message, or the stream closing, cancels the turn's task; the engine stops within a
token (or a prompt batch) and its slot is free for the next turn when the task has finished.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from opentelemetry import trace
from prometheus_client import Counter, Histogram

from services.llm.engine import EndScorer, LanguageModel, Message, Turn
from services.llm.history import History
from services.llm.tool_loop import ToolLoop, TurnTools
from voice.errors import InvalidRequestError, VoiceError
from voice.load import LoadTracker, PendingWork
from voice.streams import open_stream
from voice.telemetry import context_from_message
from voice.v1 import llm_pb2, llm_pb2_grpc

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("voice.llm")

MAX_TURN_TEXT_CHARS = 20_000
# What the model read (prompt tokens it had not cached) and wrote, by how the turn ended:
# complete, interrupted (barge-in), discarded (an early start the user talked past), failed;
# and the prompt tokens its cache served (kind "cached": what a benchmark must report).
TOKENS = Counter(
    "voice_llm_tokens", "Tokens the model processed, by kind and turn ending", ["kind", "ending"]
)

# What an end-of-turn score costs in this service (the gateway waits for it at a pause).
SCORE_SECONDS = Histogram(
    "voice_llm_end_score_seconds",
    "Wall time of one end-of-turn score",
    buckets=(0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
)


@dataclass
class _ActiveTurn:
    turn_id: str
    heard_text: str | None = None
    discard: bool = False
    task: asyncio.Task[None] = field(init=False)
    # Its tools' state: confirmation (side effects wait for it), events, end_call.
    tools: TurnTools | None = None
    # Its wait for the first token, in the load report (voice/load.py).
    pending: PendingWork | None = None


def error_text(error: BaseException) -> str:
    """A turn's error for ``TurnDone.error``: the status code's name, a colon, the message."""
    status = error.status if isinstance(error, VoiceError) else grpc.StatusCode.INTERNAL
    return f"{status.name.lower()}: {error}"


class LanguageModelServicer(llm_pb2_grpc.LanguageModelServiceServicer):
    def __init__(
        self,
        model: LanguageModel,
        system_prompt: str,
        budget_tokens: int,
        max_reply_tokens: int,
        *,
        tracer: trace.Tracer | None = None,
        tool_loop: ToolLoop | None = None,
        workers: int = 1,
    ) -> None:
        self._model = model
        self._tool_loop = tool_loop
        self._system_prompt = system_prompt
        self._budget_tokens = budget_tokens
        self._max_reply_tokens = max_reply_tokens
        self._tracer = tracer or _tracer
        self.active_streams = 0
        # The load report's critical step: a turn's first token (its end score included).
        self.load = LoadTracker("llm", workers=workers, active_streams=lambda: self.active_streams)

    async def Converse(  # noqa: N802 - gRPC method name
        self,
        request_iterator: AsyncIterator[llm_pb2.ConverseRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[llm_pb2.ConverseResponse]:
        # No headers before the first response: nothing waits for the llm's acceptance.
        opened = await open_stream(request_iterator, context, _accept, send_headers=False)
        if opened is None:
            return
        config, session_id = opened
        history = History(config.system_prompt or self._system_prompt, self._budget_tokens)
        out: asyncio.Queue[llm_pb2.ConverseResponse | None] = asyncio.Queue()
        errors: list[str] = []
        reader = asyncio.create_task(self._read(request_iterator, session_id, history, out, errors))
        self.active_streams += 1
        log.info("stream opened (session %s, %d active)", session_id, self.active_streams)
        try:
            while (response := await out.get()) is not None:
                yield response
            if errors:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, errors[0])
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            self.active_streams -= 1
            log.info("stream closed (session %s, %d active)", session_id, self.active_streams)

    async def _read(
        self,
        requests: AsyncIterator[llm_pb2.ConverseRequest],
        session_id: str,
        history: History,
        out: asyncio.Queue[llm_pb2.ConverseResponse | None],
        errors: list[str],
    ) -> None:
        active: _ActiveTurn | None = None
        try:
            async for request in requests:
                kind = request.WhichOneof("request")
                if kind == "turn":
                    if active is not None and not active.task.done():
                        active.task.cancel()
                        await asyncio.gather(active.task, return_exceptions=True)
                    active = _ActiveTurn(request.turn.turn_id)
                    active.tools = TurnTools(
                        request.turn.turn_id, out.put_nowait, session_id=session_id
                    )
                    if not request.turn.early:
                        active.tools.confirmed.set()
                    work = active.pending = self.load.begin()
                    active.task = asyncio.create_task(
                        self._run_turn(request.turn, session_id, active, history, out),
                        name=f"turn-{request.turn.turn_id}",
                    )
                    active.task.add_done_callback(work.on_done)
                elif kind == "cancel":
                    if active is not None and active.turn_id == request.cancel.turn_id:
                        if request.cancel.has_heard_text:
                            active.heard_text = request.cancel.heard_text
                        active.discard = request.cancel.discard
                        active.task.cancel()
                    else:
                        log.debug(
                            "cancel for turn %s, which is not running", request.cancel.turn_id
                        )
                elif kind == "confirm":
                    if active is not None and active.turn_id == request.confirm.turn_id:
                        assert active.tools is not None
                        active.tools.confirmed.set()
                else:
                    errors.append(f"unexpected message '{kind}' after the config")
                    break
            if active is not None:
                await asyncio.gather(active.task, return_exceptions=True)
        finally:
            if active is not None and not active.task.done():
                active.task.cancel()
                await asyncio.gather(active.task, return_exceptions=True)
            out.put_nowait(None)

    async def _run_turn(
        self,
        request: llm_pb2.UserTurn,
        session_id: str,
        active: _ActiveTurn,
        history: History,
        out: asyncio.Queue[llm_pb2.ConverseResponse | None],
    ) -> None:
        turn_id = request.turn_id
        text = request.text.strip()
        if not text:
            out.put_nowait(_done(turn_id, error="invalid_argument: empty text: nothing to answer"))
            return
        if len(text) > MAX_TURN_TEXT_CHARS:
            log.warning(
                "turn %s: text of %d characters cut to %d", turn_id, len(text), MAX_TURN_TEXT_CHARS
            )
            text = text[:MAX_TURN_TEXT_CHARS]
        turn = Turn(history.prompt_for(text), self._max_reply_tokens, session_id=session_id)
        reply: list[str] = []
        started = time.perf_counter()
        first_token_ms = 0.0
        parent = context_from_message(request.trace_context)
        with self._tracer.start_as_current_span("llm.generate", context=parent) as span:
            span.set_attribute("voice.turn_id", turn_id)
            span.set_attribute("voice.session_id", session_id)
            span.add_event("llm_start")
            if request.score_end:
                # Scored with the prompt the reply's first round reads (its tools included).
                offered = self._tool_loop.offered(turn) if self._tool_loop and active.tools else ()
                scored = dataclasses.replace(turn, tools=offered)
                out.put_nowait(await self._score_end(turn_id, scored, span))
            try:
                async for delta in self._reply(turn, active):
                    if not reply:
                        first_token_ms = (time.perf_counter() - started) * 1000
                        if active.pending is not None:
                            active.pending.answered()
                        span.add_event("llm_first_token")
                    reply.append(delta)
                    out.put_nowait(
                        llm_pb2.ConverseResponse(
                            delta=llm_pb2.TextDelta(turn_id=turn_id, text=delta)
                        )
                    )
            except asyncio.CancelledError:
                _unless_answered(turn, reply)
                if not active.discard:
                    heard = active.heard_text
                    kept = _kept_calls(active, None if heard is None else len(heard))
                    history.record(text, "".join(reply) if heard is None else heard, kept)
                span.add_event("interrupted")
                span.set_attribute("llm.cancelled", True)
                ending = "discarded" if active.discard else "interrupted"
                _describe(span, turn, first_token_ms, ending)
                out.put_nowait(
                    _done(turn_id, turn=turn, cancelled=True, first_token_ms=first_token_ms)
                )
                raise
            except Exception as error:
                _unless_answered(turn, reply)
                message = error_text(error)
                if isinstance(error, VoiceError):
                    log.warning("turn %s failed: %s", turn_id, message)
                else:
                    log.exception("turn %s failed", turn_id)
                span.record_exception(error)
                span.set_attribute("llm.error", message)
                _describe(span, turn, first_token_ms, "failed")
                history.record(text, "".join(reply), _kept_calls(active, None))
                out.put_nowait(
                    _done(turn_id, turn=turn, error=message, first_token_ms=first_token_ms)
                )
                return
            _describe(span, turn, first_token_ms, "complete")
            history.record(text, "".join(reply), _kept_calls(active, None))
            end_call = active.tools is not None and active.tools.end_call
            out.put_nowait(
                _done(turn_id, turn=turn, first_token_ms=first_token_ms, end_call=end_call)
            )

    async def _reply(self, turn: Turn, active: _ActiveTurn) -> AsyncIterator[str]:
        """The reply's text: through the tool loop when the agent has tools."""
        if self._tool_loop is not None and self._tool_loop.registry and active.tools:
            async for text in self._tool_loop.reply(self._model, turn, active.tools):
                yield text
            return
        async for delta in self._model.generate(turn):
            if isinstance(delta, str):
                yield delta

    async def _score_end(
        self, turn_id: str, turn: Turn, span: trace.Span
    ) -> llm_pb2.ConverseResponse:
        """The turn's end score, before its reply (``TurnScore``); a failure is "unavailable"."""
        started = time.perf_counter()
        p_end: float | None = None
        if isinstance(self._model, EndScorer):
            try:
                p_end = await self._model.score_end(turn)
            except Exception as error:  # the reply goes on; the gateway decides without it
                log.warning("turn %s: end-of-turn scoring failed: %s", turn_id, error)
        elapsed_ms = (time.perf_counter() - started) * 1000
        SCORE_SECONDS.observe(elapsed_ms / 1000)
        span.add_event("llm_end_scored")
        span.set_attribute("llm.end_score_ms", round(elapsed_ms, 1))
        if p_end is not None:
            span.set_attribute("llm.end_score", round(p_end, 4))
        score = llm_pb2.TurnScore(
            turn_id=turn_id,
            p_end=p_end or 0.0,
            available=p_end is not None,
            elapsed_ms=elapsed_ms,
        )
        return llm_pb2.ConverseResponse(score=score)


def _accept(config: llm_pb2.ConverseConfig) -> tuple[llm_pb2.ConverseConfig, str]:
    """The stream's config and session id; a stream without a session id is refused."""
    session_id = config.session_id.strip()
    if not session_id:
        raise InvalidRequestError("the config needs a session_id")
    return config, session_id


def _kept_calls(active: _ActiveTurn, heard_chars: int | None) -> tuple[Message, ...]:
    """The turn's tool calls the history keeps (those whose outcome the user heard)."""
    return active.tools.kept_for(heard_chars) if active.tools is not None else ()


def _unless_answered(turn: Turn, reply: list[str]) -> None:
    """A provider that stopped before its first token did not answer: the turn names none."""
    if not reply:
        turn.stats.provider = ""
        turn.stats.model = ""


def _describe(span: trace.Span, turn: Turn, first_token_ms: float, ending: str) -> None:
    """The turn's span names the provider that answered (none if none did) and its numbers."""
    stats = turn.stats
    TOKENS.labels("prompt", ending).inc(max(stats.prompt_tokens - stats.cached_tokens, 0))
    TOKENS.labels("completion", ending).inc(stats.completion_tokens)
    TOKENS.labels("cached", ending).inc(max(stats.cached_tokens, 0))
    if stats.provider:
        span.set_attribute("llm.provider", stats.provider)
        span.set_attribute("llm.model", stats.model)
    span.set_attribute("llm.prompt_tokens", stats.prompt_tokens)
    span.set_attribute("llm.cached_tokens", stats.cached_tokens)
    span.set_attribute("llm.completion_tokens", stats.completion_tokens)
    span.set_attribute("llm.queue_ms", stats.queue_ms)
    span.set_attribute("llm.first_token_ms", first_token_ms)


def _done(
    turn_id: str,
    *,
    turn: Turn | None = None,
    cancelled: bool = False,
    error: str = "",
    first_token_ms: float = 0.0,
    end_call: bool = False,
) -> llm_pb2.ConverseResponse:
    stats = turn.stats if turn is not None else None
    return llm_pb2.ConverseResponse(
        done=llm_pb2.TurnDone(
            turn_id=turn_id,
            provider=stats.provider if stats else "",
            model=stats.model if stats else "",
            cancelled=cancelled,
            prompt_tokens=stats.prompt_tokens if stats else 0,
            completion_tokens=stats.completion_tokens if stats else 0,
            cached_tokens=stats.cached_tokens if stats else 0,
            first_token_ms=first_token_ms,
            error=error,
            end_call=end_call,
        )
    )
