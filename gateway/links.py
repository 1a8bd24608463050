"""Stage links: one supervised, session-long bidirectional stream to a stage (stt, llm, tts).

A link opens its stream with the stage's config message, hands every response to the session,
and when the stream breaks for a reason worth waiting out (the stage restarts, the connection
dropped) it says so, waits until the stage's health check answers SERVING (backing off from
0.25 s to 1 s), reopens the stream with a fresh config and says so again. Any other failure (a
refused request, a full stage) is final: the link reports it and stops. ``send`` never blocks:
requests queue behind the stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

log = logging.getLogger(__name__)

Request = TypeVar("Request")
Response = TypeVar("Response")

RECONNECT_MIN_S = 0.25
RECONNECT_MAX_S = 1.0
# How long a new stream waits for the stage to accept its config (stages answer with their
# response headers at once, or refuse with INVALID_ARGUMENT); silence is taken as accepted.
ACCEPT_TIMEOUT_S = 5.0
RECOVERABLE = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
)


@dataclass(frozen=True)
class StageFailure:
    """Why a link's stream broke."""

    stage: str
    code: grpc.StatusCode
    details: str

    @property
    def recoverable(self) -> bool:
        return self.code in RECOVERABLE

    def __str__(self) -> str:
        return f"{self.stage}: {self.code.name}: {self.details}"


OpenCall = Callable[[AsyncIterator[Request]], grpc.aio.StreamStreamCall]  # type: ignore[type-arg]


class _Stream(Generic[Request, Response]):
    """One gRPC call fed from a queue: ``send`` never blocks, ``close`` half-closes."""

    def __init__(self, open_call: OpenCall[Request], first: Request) -> None:
        self._queue: asyncio.Queue[Request | None] = asyncio.Queue()
        self._first = first
        self.call = open_call(self._requests())

    async def _requests(self) -> AsyncIterator[Request]:
        yield self._first
        while (request := await self._queue.get()) is not None:
            yield request

    def send(self, request: Request) -> None:
        self._queue.put_nowait(request)

    def close(self) -> None:
        self._queue.put_nowait(None)
        self.call.cancel()

    async def refusal(self) -> str | None:
        """The stage's reason if it refused the config (INVALID_ARGUMENT), else None."""
        try:
            await asyncio.wait_for(self.call.initial_metadata(), ACCEPT_TIMEOUT_S)
        except TimeoutError:
            return None
        except grpc.aio.AioRpcError as error:
            refused = error.code() == grpc.StatusCode.INVALID_ARGUMENT
            return (error.details() or "refused") if refused else None
        if not self.call.done() or await self.call.code() != grpc.StatusCode.INVALID_ARGUMENT:
            return None
        return str(await self.call.details())


class StageLink(Generic[Request, Response]):
    """A stage's session-long stream, supervised (module docstring)."""

    def __init__(
        self,
        stage: str,
        open_call: OpenCall[Request],
        config: Callable[[], Request],
        serving: Callable[[], Awaitable[bool]],
        on_response: Callable[[Response], Awaitable[None]],
        on_down: Callable[[StageFailure], Awaitable[None]],
        on_up: Callable[[], Awaitable[None]],
        *,
        name: str = "",
    ) -> None:
        self.stage = stage
        self._name = name
        self._open_call = open_call
        self._config = config
        self._serving = serving
        self._on_response = on_response
        self._on_down = on_down
        self._on_up = on_up
        self._stream: _Stream[Request, Response] | None = None
        self._task: asyncio.Task[StageFailure | None] | None = None
        self._closing = False
        self.down = False

    def open(self) -> None:
        """Open the stream (its config is read now), closing any stream opened before."""
        if self._stream is not None:
            self._stream.close()
        self._stream = _Stream(self._open_call, self._config())

    async def refusal(self) -> str | None:
        assert self._stream is not None, "open() first"
        return await self._stream.refusal()

    def start(self) -> asyncio.Task[StageFailure | None]:
        """Supervise the open stream; the task ends with a final failure (or None on close)."""
        if self._stream is None:
            self.open()
        self._task = asyncio.create_task(self._supervise(), name=f"link-{self.stage}")
        return self._task

    def send(self, request: Request) -> None:
        if self._stream is not None and not self.down:
            self._stream.send(request)

    async def close(self) -> None:
        self._closing = True
        if self._stream is not None:
            self._stream.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _supervise(self) -> StageFailure | None:
        backoff = RECONNECT_MIN_S
        while True:
            assert self._stream is not None
            failure = await self._read(self._stream)
            if self._closing:
                return None
            if not failure.recoverable:
                return failure
            if not self.down:
                self.down = True
                log.warning(
                    "session %s: %s stream broke (%s: %s)",
                    self._name,
                    self.stage,
                    failure.code.name,
                    failure.details,
                )
                await self._on_down(failure)
            while not await self._serving():
                if self._closing:
                    return None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX_S)
            if self._closing:
                return None
            backoff = RECONNECT_MIN_S
            self.open()
            self.down = False
            await self._on_up()

    async def _read(self, stream: _Stream[Request, Response]) -> StageFailure:
        try:
            async for response in stream.call:
                await self._on_response(response)
        except grpc.aio.AioRpcError as error:
            return StageFailure(self.stage, error.code(), error.details() or "")
        return StageFailure(self.stage, grpc.StatusCode.UNAVAILABLE, "the stream ended")
