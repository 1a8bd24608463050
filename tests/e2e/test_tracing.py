"""One trace per turn across the four real processes, received by a real OTLP/gRPC receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from launcher.cluster import Cluster, ClusterConfig
from tests.conftest import Clip, clip_named
from tools.client import ClipAudio, talk
from tools.otlp_receiver import OtlpReceiver, ReceivedSpan

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

SERVICES = {"gateway", "stt", "llm", "tts"}


@dataclass
class TracedCluster:
    cluster: Cluster
    receiver: OtlpReceiver

    def url(self) -> str:
        return f"{self.cluster.ws_url}/ws/{self.cluster.token()}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TracedCluster]:
    receiver = OtlpReceiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    log_path: Path = tmp_path_factory.mktemp("traced") / "cluster.log"
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SDK_DISABLED": "false",
    }
    try:
        with log_path.open("w") as log:
            async with Cluster(ClusterConfig.on_free_ports(output=log, env=env)) as cluster:
                yield TracedCluster(cluster, receiver)
    finally:
        await server.stop(0)


async def wait_for_turns(
    receiver: OtlpReceiver, count: int, timeout_s: float = 20.0
) -> list[ReceivedSpan]:
    """The gateway's turn spans, once each has its stt, llm and tts children."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        turns = [t for t in receiver.named("voice.turn") if "pipeline_complete" in t.events]
        complete = [
            t
            for t in turns
            if {"stt.utterance", "llm.generate", "tts.synthesize"}
            <= {s.span.name for s in receiver.in_trace(t.span.trace_id)}
        ]
        if len(complete) >= count:
            return complete
        await asyncio.sleep(0.2)
    names = sorted({(s.service, s.span.name) for s in receiver.spans})
    raise AssertionError(f"fewer than {count} complete turn traces; received {names}")


def assert_one_turn_trace(receiver: OtlpReceiver, turn: ReceivedSpan) -> None:
    spans = receiver.in_trace(turn.span.trace_id)
    assert {s.service for s in spans} >= SERVICES
    assert turn.service == "gateway" and not turn.span.parent_span_id  # the root of the trace
    session_id = turn.attribute("voice.session_id")
    assert session_id, "the turn span has no voice.session_id"
    for name, service in (
        ("stt.utterance", "stt"),
        ("llm.generate", "llm"),
        ("tts.synthesize", "tts"),
    ):
        [child] = [s for s in spans if s.span.name == name]
        assert child.service == service
        assert child.span.parent_span_id == turn.span.span_id, f"{name} is not under the turn"
    # Every span of the turn, in all four processes, names the session it belongs to.
    unnamed = [
        (s.service, s.span.name, s.attribute("voice.session_id"))
        for s in spans
        if s.attribute("voice.session_id") != session_id
    ]
    assert not unnamed, f"spans without voice.session_id {session_id!r}: {unnamed}"
    stt = next(s for s in spans if s.span.name == "stt.utterance")
    assert "end_of_turn" in stt.events and "stt_complete" in stt.events
    moments = turn.events
    order = [
        "audio_received",
        "llm_start",
        "llm_first_token",
        "tts_start",
        "first_audio_sent",
        "pipeline_complete",
    ]
    assert [moments[name] for name in order] == sorted(moments[name] for name in order)
    assert moments["audio_received"] <= moments["stt_complete"] <= moments["first_audio_sent"]
    llm = next(s for s in spans if s.span.name == "llm.generate")
    assert list(llm.events)[:2] == ["llm_start", "llm_first_token"]
    assert llm.attribute("llm.provider") == "local"
    tts = next(s for s in spans if s.span.name == "tts.synthesize")
    assert "tts_start" in tts.events and "first_audio" in tts.events


async def test_one_turn_is_one_trace_across_the_four_processes(
    traced: TracedCluster, speech_clips: list[Clip]
) -> None:
    result = await talk(traced.url(), ClipAudio.from_wav(clip_named(speech_clips, "036_").path))
    assert result.latency_ms is not None
    [turn] = await wait_for_turns(traced.receiver, 1)
    assert_one_turn_trace(traced.receiver, turn)


async def test_two_sessions_at_once_make_two_separate_traces(
    traced: TracedCluster, speech_clips: list[Clip]
) -> None:
    before = {t.span.trace_id for t in traced.receiver.named("voice.turn")}
    clips = [clip_named(speech_clips, "036_"), clip_named(speech_clips, "006_")]
    await asyncio.gather(*(talk(traced.url(), ClipAudio.from_wav(c.path)) for c in clips))
    turns = [
        t
        for t in await wait_for_turns(traced.receiver, len(before) + 2)
        if t.span.trace_id not in before
    ]
    assert len(turns) == 2
    assert turns[0].span.trace_id != turns[1].span.trace_id
    assert turns[0].attribute("voice.session_id") != turns[1].attribute("voice.session_id")
    for turn in turns:
        assert_one_turn_trace(traced.receiver, turn)
