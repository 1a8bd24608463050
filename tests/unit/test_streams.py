"""open_stream: the config first, refusals with their status, headers once it is accepted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from voice.errors import InvalidRequestError, ResourceExhaustedError
from voice.streams import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, open_stream, sample_rate
from voice.v1 import audio_pb2, stt_pb2

pytestmark = pytest.mark.unit


class AbortedError(Exception):
    pass


class Context:
    """Records what the servicer's context was asked to do; abort raises, as gRPC's does."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.calls.append(("abort", code, details))
        raise AbortedError

    async def send_initial_metadata(self, metadata: Any) -> None:
        self.calls.append(("headers", metadata, None))


async def requests(*items: stt_pb2.TranscribeRequest) -> AsyncIterator[stt_pb2.TranscribeRequest]:
    for item in items:
        yield item


CONFIG = stt_pb2.TranscribeRequest(config=stt_pb2.TranscribeConfig(session_id="s", language="en"))
AUDIO = stt_pb2.TranscribeRequest(audio=audio_pb2.AudioChunk(pcm=b"\x00\x00"))


async def test_an_accepted_config_gets_the_headers_and_gives_what_accept_made_of_it() -> None:
    context = Context()
    seen: list[str] = []

    def accept(config: stt_pb2.TranscribeConfig) -> str:
        seen.append(str(context.calls))
        return config.session_id

    opened = await open_stream(requests(CONFIG, AUDIO), context, accept)  # type: ignore[arg-type]
    assert opened == "s"
    assert seen == ["[]"]  # accepted before any headers went out
    assert context.calls == [("headers", (), None)]


async def test_without_send_headers_nothing_is_sent() -> None:
    context = Context()
    opened = await open_stream(
        requests(CONFIG),
        context,  # type: ignore[arg-type]
        lambda config: config.language,
        send_headers=False,
    )
    assert opened == "en" and context.calls == []


async def test_a_stream_closed_before_its_config_is_none_and_nothing_is_sent() -> None:
    context = Context()
    assert await open_stream(requests(), context, lambda c: c) is None  # type: ignore[arg-type]
    assert context.calls == []


async def test_another_first_message_is_refused_before_accept_is_asked() -> None:
    context = Context()
    asked: list[object] = []
    with pytest.raises(AbortedError):
        await open_stream(requests(AUDIO, CONFIG), context, asked.append)  # type: ignore[arg-type]
    assert asked == []
    assert context.calls == [
        ("abort", grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a config")
    ]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidRequestError("language 'xx' is not supported"), grpc.StatusCode.INVALID_ARGUMENT),
        (ResourceExhaustedError("at its maximum"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    ],
)
async def test_a_refused_config_ends_the_stream_with_its_status_and_no_headers(
    error: Exception, status: grpc.StatusCode
) -> None:
    context = Context()

    def accept(config: stt_pb2.TranscribeConfig) -> None:
        raise error

    with pytest.raises(AbortedError):
        await open_stream(requests(CONFIG), context, accept)  # type: ignore[arg-type]
    assert context.calls == [("abort", status, str(error))]


def test_sample_rate_default_and_inclusive_range() -> None:
    assert sample_rate(0, 16000) == 16000
    assert sample_rate(MIN_SAMPLE_RATE, 16000) == MIN_SAMPLE_RATE
    assert sample_rate(MAX_SAMPLE_RATE, 16000) == MAX_SAMPLE_RATE
    for rate in (MIN_SAMPLE_RATE - 1, MAX_SAMPLE_RATE + 1):
        with pytest.raises(InvalidRequestError, match=rf"sample_rate {rate} is outside \[8000, "):
            sample_rate(rate, 16000)
