"""The gateway's connections to the stage services: one channel per stage, and health.

One channel per stage is shared by every session; each session opens its own session-long
bidirectional stream on it (gateway/links.py). Keepalives notice a dead peer; the channel
reconnects with gRPC's own backoff (capped at 1 s).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.settings import GatewaySettings
from voice.v1 import llm_pb2_grpc, stt_pb2_grpc, tts_pb2_grpc

log = logging.getLogger(__name__)

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A stage that comes back (a restart, a new pod) is found again within about a second.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    ("grpc.lb_policy_name", "round_robin"),
]


def _interceptors() -> list[grpc.aio.ClientInterceptor]:
    try:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters

        not_health = filters.negate(filters.health_check())  # type: ignore[no-untyped-call]
        return list(aio_client_interceptors(filter_=not_health))  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - the instrumentation is a pinned dependency
        return []


@dataclass
class Upstreams:
    stt_channel: grpc.aio.Channel
    llm_channel: grpc.aio.Channel
    tts_channel: grpc.aio.Channel

    @staticmethod
    def connect(settings: GatewaySettings) -> Upstreams:
        def channel(address: str) -> grpc.aio.Channel:
            return grpc.aio.insecure_channel(
                address, options=CHANNEL_OPTIONS, interceptors=_interceptors()
            )

        return Upstreams(
            channel(settings.stt_address),
            channel(settings.llm_address),
            channel(settings.tts_address),
        )

    @property
    def stt(self) -> stt_pb2_grpc.SpeechToTextServiceStub:
        return stt_pb2_grpc.SpeechToTextServiceStub(self.stt_channel)

    @property
    def llm(self) -> llm_pb2_grpc.LanguageModelServiceStub:
        return llm_pb2_grpc.LanguageModelServiceStub(self.llm_channel)

    @property
    def tts(self) -> tts_pb2_grpc.TextToSpeechServiceStub:
        return tts_pb2_grpc.TextToSpeechServiceStub(self.tts_channel)

    async def health(self, timeout_s: float = 1.0) -> dict[str, str]:
        """Each stage's gRPC health status name (SERVING, NOT_SERVING, or UNAVAILABLE)."""

        async def check(channel: grpc.aio.Channel) -> str:
            try:
                response = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout_s
                )
                return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
            except grpc.aio.AioRpcError as error:
                return str(error.code().name)

        names = ("stt", "llm", "tts")
        channels = (self.stt_channel, self.llm_channel, self.tts_channel)
        results = await asyncio.gather(*(check(c) for c in channels))
        return dict(zip(names, results, strict=True))

    async def serving(self, stage: str, timeout_s: float = 1.0) -> bool:
        """Whether one stage answers its health check with SERVING."""
        channel = {"stt": self.stt_channel, "llm": self.llm_channel, "tts": self.tts_channel}[stage]
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.aio.AioRpcError:
            return False
        return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self) -> None:
        await asyncio.gather(
            self.stt_channel.close(), self.llm_channel.close(), self.tts_channel.close()
        )
