"""The gateway's connections to the stage services: a channel per replica, loads, and health.

Each stage's address (``host:port``) is resolved to its replicas: an IP address is one replica
(``make run``); a name is looked up (a headless Kubernetes service or a Compose service with
several containers returns one address per replica) and looked up again every
``GATEWAY_RESOLVE_INTERVAL_S``; a name that does not resolve yet is kept as one replica that
gRPC resolves itself. Every replica has its own channel, shared by the sessions whose streams
it carries (gateway/links.py). Keepalives notice a dead peer; a channel reconnects with gRPC's
own backoff (capped at 1 s).

:class:`LoadMonitor` polls every replica's ``voice.v1.LoadService`` every
``GATEWAY_LOAD_POLL_MS``; a new session's stream goes to the least-loaded usable replica
(gateway/admission.py), never to one that is draining, full or unreachable.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.admission import STAGES, ReplicaView, StageLoad, choose_replica
from gateway.settings import GatewaySettings
from voice.v1 import llm_pb2_grpc, load_pb2, load_pb2_grpc, stt_pb2_grpc, tts_pb2_grpc

log = logging.getLogger(__name__)

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A stage that comes back (a restart, a new pod) is found again within about a second.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 1_000),
    # A name that resolves to several addresses is spread over them until it is resolved here.
    ("grpc.lb_policy_name", "round_robin"),
]
# The session-long stream each stage serves, on a channel.
OPENERS: dict[str, Callable[[grpc.aio.Channel], Any]] = {
    "stt": lambda channel: stt_pb2_grpc.SpeechToTextServiceStub(channel).Transcribe,
    "llm": lambda channel: llm_pb2_grpc.LanguageModelServiceStub(channel).Converse,
    "tts": lambda channel: tts_pb2_grpc.TextToSpeechServiceStub(channel).Synthesize,
}


def _interceptors() -> list[grpc.aio.ClientInterceptor]:
    try:
        from opentelemetry.instrumentation.grpc import aio_client_interceptors, filters

        not_health = filters.negate(filters.health_check())  # type: ignore[no-untyped-call]
        return list(aio_client_interceptors(filter_=not_health))  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - the instrumentation is a pinned dependency
        return []


def _channel(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS, interceptors=_interceptors())


def split_address(address: str) -> tuple[str, str]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port


def is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def resolve(address: str) -> list[str] | None:
    """The replicas' addresses behind ``address``: itself for an IP address, one ``ip:port``
    per address a name resolves to, None when the name does not resolve now."""
    name = address
    if name.startswith("dns:"):  # dns:///host:port or dns://authority/host:port
        name = name[len("dns:") :].lstrip("/")
        name = name.split("/", 1)[1] if "/" in name else name
    elif ":/" in name or name.startswith(("unix:", "ipv4:", "ipv6:")):
        return [address]  # another gRPC scheme: gRPC resolves it itself
    host, port = split_address(name)
    if not host or is_ip(host):
        return [address]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        log.warning("cannot resolve %s (%s): keeping its replicas", address, error)
        return None
    found: list[str] = []
    for *_, sockaddr in infos:
        ip = str(sockaddr[0])
        replica = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
        if replica not in found:
            found.append(replica)
    return sorted(found) or [address]


def stage_load(report: load_pb2.LoadReport) -> StageLoad:
    return StageLoad(
        stage=report.stage,
        active_streams=report.active_streams,
        queue_depth=report.queue_depth,
        workers=report.workers,
        recent_p90_ms=report.recent_p90_ms,
        recent_samples=report.recent_samples,
        recent_streams=report.recent_streams,
        draining=report.draining,
        max_streams=report.max_streams,
    )


@dataclass
class Replica:
    address: str
    channel: grpc.aio.Channel
    load: StageLoad | None = None
    reachable: bool = True
    # Streams this gateway opened on it that are still open.
    assigned: int = 0
    # Gone from the name's addresses: no new streams; closed once its streams are.
    retired: bool = False

    def view(self) -> ReplicaView:
        return ReplicaView(
            self.address, self.load, self.reachable and not self.retired, self.assigned
        )


@dataclass
class StageReplicas:
    """One stage's replicas behind its configured address."""

    stage: str
    target: str
    replicas: dict[str, Replica] = field(default_factory=dict)

    def update(self, addresses: list[str]) -> None:
        for address in addresses:
            replica = self.replicas.get(address)
            if replica is None:
                log.info("%s: replica %s", self.stage, address)
                self.replicas[address] = Replica(address, _channel(address))
            else:
                replica.retired = False
        for address, replica in self.replicas.items():
            if address not in addresses and not replica.retired:
                log.info("%s: replica %s is gone from %s", self.stage, address, self.target)
                replica.retired = True

    def views(self) -> list[ReplicaView]:
        return [replica.view() for replica in self.replicas.values()]

    def pick(self) -> Replica:
        """The least-loaded usable replica; the first one when none is usable (its stream then
        fails and the session reports it, as with a single replica)."""
        chosen = choose_replica(self.views())
        if chosen is None:
            live = [r for r in self.replicas.values() if not r.retired]
            return (live or list(self.replicas.values()))[0]
        return self.replicas[chosen.address]

    def open_call(self, requests: AsyncIterator[Any]) -> Any:
        """Open the stage's session-long stream on the replica picked now."""
        replica = self.pick()
        call = OPENERS[self.stage](replica.channel)(requests)
        replica.assigned += 1

        def closed(_call: object) -> None:
            replica.assigned -= 1

        call.add_done_callback(closed)
        return call

    async def close_retired(self) -> None:
        for address, replica in list(self.replicas.items()):
            if replica.retired and replica.assigned == 0 and len(self.replicas) > 1:
                del self.replicas[address]
                await replica.channel.close()


class Upstreams:
    def __init__(self, stages: dict[str, StageReplicas]) -> None:
        self.stages = stages

    @staticmethod
    def connect(settings: GatewaySettings) -> Upstreams:
        """One replica per configured address at first (no wait: the first session goes
        exactly where it did before); :meth:`refresh` resolves names into their replicas."""
        targets = {
            "stt": settings.stt_address,
            "llm": settings.llm_address,
            "tts": settings.tts_address,
        }
        stages = {stage: StageReplicas(stage, target) for stage, target in targets.items()}
        for stage in stages.values():
            stage.update([stage.target])
        return Upstreams(stages)

    async def refresh(self) -> None:
        """Resolve every stage's address again, adding and retiring replicas."""
        for stage in self.stages.values():
            addresses = await resolve(stage.target)
            if addresses is not None:
                stage.update(addresses)
            await stage.close_retired()

    def opener(self, stage: str) -> Callable[[AsyncIterator[Any]], Any]:
        """Opens the stage's stream on its least-loaded replica, picked at each open."""
        return self.stages[stage].open_call

    def views(self) -> dict[str, list[ReplicaView]]:
        return {stage: replicas.views() for stage, replicas in self.stages.items()}

    def _channels(self, stage: str) -> list[grpc.aio.Channel]:
        return [r.channel for r in self.stages[stage].replicas.values() if not r.retired]

    async def health(self, timeout_s: float = 1.0) -> dict[str, str]:
        """Each stage's gRPC health status name (SERVING, NOT_SERVING, or UNAVAILABLE): SERVING
        when any of its replicas serves."""

        async def check(channel: grpc.aio.Channel) -> str:
            try:
                response = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout_s
                )
                return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))
            except grpc.aio.AioRpcError as error:
                return str(error.code().name)

        async def stage_status(stage: str) -> str:
            results = await asyncio.gather(*(check(c) for c in self._channels(stage)))
            return "SERVING" if "SERVING" in results else (results[0] if results else "UNAVAILABLE")

        results = await asyncio.gather(*(stage_status(stage) for stage in STAGES))
        return dict(zip(STAGES, results, strict=True))

    async def serving(self, stage: str, timeout_s: float = 1.0) -> bool:
        """Whether one stage answers its health check with SERVING (any of its replicas)."""

        async def check(channel: grpc.aio.Channel) -> bool:
            try:
                response = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(), timeout=timeout_s
                )
            except grpc.aio.AioRpcError:
                return False
            return bool(response.status == health_pb2.HealthCheckResponse.SERVING)

        return any(await asyncio.gather(*(check(c) for c in self._channels(stage))))

    async def close(self) -> None:
        await asyncio.gather(
            *(r.channel.close() for s in self.stages.values() for r in s.replicas.values())
        )


class LoadMonitor:
    """Polls every replica's load report; a replica that does not answer is unreachable (no
    new sessions) until it answers again. A stage that does not serve the LoadService (an
    older build) stays reachable with no report."""

    def __init__(
        self, upstreams: Upstreams, *, poll_s: float = 0.5, resolve_s: float = 10.0
    ) -> None:
        self._upstreams = upstreams
        self._poll_s = poll_s
        self._resolve_s = resolve_s

    async def poll_once(self) -> None:
        replicas = [r for s in self._upstreams.stages.values() for r in s.replicas.values()]
        await asyncio.gather(*(self._poll(replica) for replica in replicas))

    async def _poll(self, replica: Replica) -> None:
        try:
            response = await load_pb2_grpc.LoadServiceStub(replica.channel).GetLoad(
                load_pb2.GetLoadRequest(), timeout=max(0.2, self._poll_s)
            )
            load = stage_load(response.report)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                replica.reachable, replica.load = True, None
                return
            if replica.reachable:
                log.warning(
                    "replica %s: no load report (%s): no new sessions go there",
                    replica.address,
                    error.code().name,
                )
            replica.reachable, replica.load = False, None
            return
        except Exception as error:  # a garbled answer must not stop the polling
            if replica.reachable:
                log.warning("replica %s: unreadable load report (%s)", replica.address, error)
            replica.reachable, replica.load = False, None
            return
        if not replica.reachable:
            log.info("replica %s: reporting its load again", replica.address)
        replica.reachable, replica.load = True, load

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        resolved_at = -self._resolve_s
        while True:
            try:
                if loop.time() - resolved_at >= self._resolve_s:
                    resolved_at = loop.time()
                    await self._upstreams.refresh()
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("load polling failed; trying again")
            await asyncio.sleep(self._poll_s)
