"""How every service's session stream opens: its config first, accepted or refused at once.

A stream's first request must be its config (the ``config`` of its ``request`` oneof).
:func:`open_stream` reads it, refuses any other first message with INVALID_ARGUMENT, and asks
the service to accept the config: the service raises a :class:`~voice.errors.VoiceError`
(``InvalidRequestError``: INVALID_ARGUMENT, ``ResourceExhaustedError``: RESOURCE_EXHAUSTED)
for one it cannot serve, which ends the stream with that status and message before anything
else happens. An accepted config is answered with the response headers at once, so a caller
that waits for them (the gateway, before its ``ready``) knows before it sends audio or text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Literal, Protocol, TypeVar

import grpc

from voice.errors import InvalidRequestError, VoiceError

# The audio rates a stream may ask for; others are refused (the services resample within it).
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 48000

Config = TypeVar("Config")
ConfigT_co = TypeVar("ConfigT_co", covariant=True)
Accepted = TypeVar("Accepted")


class Opening(Protocol[ConfigT_co]):
    """A stream request whose ``request`` oneof has a ``config`` (every service's does)."""

    @property
    def config(self) -> ConfigT_co: ...

    def WhichOneof(self, oneof_group: Literal["request"]) -> str | None: ...  # noqa: N802


async def open_stream(
    requests: AsyncIterator[Opening[Config]],
    context: grpc.aio.ServicerContext,
    accept: Callable[[Config], Accepted],
    *,
    send_headers: bool = True,
) -> Accepted | None:
    """What ``accept`` made of the stream's config, once accepted; None when the stream closed
    before sending anything. Refusals end the RPC (module docstring); with ``send_headers``
    the response headers go out as soon as the config is accepted."""
    first = await anext(aiter(requests), None)
    if first is None:
        return None
    if first.WhichOneof("request") != "config":
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a config")
    try:
        accepted = accept(first.config)
    except VoiceError as error:
        await context.abort(error.status, str(error))
    if send_headers:
        await context.send_initial_metadata(())
    return accepted


def sample_rate(requested: int, default: int) -> int:
    """A config's sample rate (``default`` when it names none); refused outside the range."""
    rate = requested or default
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidRequestError(
            f"sample_rate {rate} is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]"
        )
    return rate
