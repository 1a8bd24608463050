"""The gRPC server bootstrap every service uses, and the ``python -m services.<name>`` around it.

:func:`run_service` is each service's whole ``__main__``: settings (a bad value or a missing
model ends the process with exit status 2 and one message naming it), logging and tracing, the
service's own start (its engines loaded and warmed up), then :func:`serve` until a signal.

:func:`serve` adds the standard health service (serving once the engines are loaded), server
reflection, OpenTelemetry server instrumentation, and a graceful shutdown on SIGTERM or SIGINT:
health turns to NOT_SERVING, then ``stop(grace)`` lets open streams finish for a while before
they are cut.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from voice.errors import SettingsError
from voice.load import SERVICE_NAME as LOAD_SERVICE_NAME
from voice.load import LoadTracker, export_gauges, serve_load
from voice.models import ModelUnavailableError
from voice.settings import CommonSettings
from voice.telemetry import setup_logging, setup_tracing

log = logging.getLogger(__name__)

# Session-long streams need keepalives to notice a peer that vanished without closing.
SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
]


def serve_metrics(name: str, port: int, active_streams: Callable[[], int] | None) -> None:
    from prometheus_client import Gauge, start_http_server

    if active_streams is not None:
        gauge = Gauge(f"voice_{name}_active_streams", f"Open {name} streams (one per session)")
        gauge.set_function(lambda: float(active_streams()))
    start_http_server(port)
    log.info("%s metrics on :%d/metrics", name, port)


def _interceptors() -> list[grpc.aio.ServerInterceptor]:
    try:
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

        # Health probes every few seconds would bury the turns' traces in Jaeger.
        not_health = filters.negate(filters.health_check())  # type: ignore[no-untyped-call]
        return [aio_server_interceptor(filter_=not_health)]  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - the instrumentation is a pinned dependency
        return []


async def serve(
    *,
    name: str,
    listen: str,
    service_names: list[str],
    register: Callable[[grpc.aio.Server], None],
    grace_s: float = 5.0,
    on_stop: Callable[[], Awaitable[None]] | None = None,
    metrics_port: int = 0,
    active_streams: Callable[[], int] | None = None,
    load: LoadTracker | None = None,
) -> None:
    """Run a gRPC server on ``listen`` until SIGTERM or SIGINT, then shut down gracefully.

    With ``metrics_port``, Prometheus metrics are served over HTTP there: the open streams,
    the load report's figures, and the process's own CPU and memory figures. With ``load``,
    the server also answers ``voice.v1.LoadService`` (voice/load.py), and reports itself
    draining from the moment the shutdown starts.
    """
    if metrics_port:
        if load is not None:
            export_gauges(load)
        serve_metrics(name, metrics_port, active_streams)
    server = grpc.aio.server(interceptors=_interceptors(), options=SERVER_OPTIONS)
    register(server)
    if load is not None:
        serve_load(server, load)
        service_names = [*service_names, LOAD_SERVICE_NAME]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        [
            *service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        server,
    )
    port = server.add_insecure_port(listen)
    if port == 0:
        raise RuntimeError(f"{name}: cannot listen on {listen}")
    await server.start()
    for service in ["", *service_names]:
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    log.info("%s serving on %s", name, listen)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()

    log.info("%s shutting down (grace %.1fs)", name, grace_s)
    if load is not None:
        load.draining = True
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
    if on_stop is not None:
        await on_stop()
    log.info("%s stopped", name)


class ServiceSettings(Protocol):
    """What the bootstrap reads of a service's settings."""

    @property
    def common(self) -> CommonSettings: ...

    @property
    def listen(self) -> str: ...


class StreamServicer(Protocol):
    """A servicer that counts its open streams (the ``voice_<name>_active_streams`` gauge)."""

    active_streams: int
    # What the stage carries (voice/load.py): served as voice.v1.LoadService.
    load: LoadTracker


Settings = TypeVar("Settings", bound=ServiceSettings)
Servicer = TypeVar("Servicer", bound=StreamServicer)


@dataclass(frozen=True)
class Started(Generic[Servicer]):
    """A service's start: its servicer, and what to do once the server has stopped."""

    servicer: Servicer
    stop: Callable[[], Awaitable[None]]


def run_service(
    name: str,
    service: ServiceDescriptor,
    add_to_server: Callable[[Servicer, grpc.aio.Server], None],
    load_settings: Callable[[], Settings],
    start: Callable[[Settings], Awaitable[Started[Servicer]]],
) -> None:
    """Run one service until SIGTERM or SIGINT (module docstring): ``name`` prefixes its
    messages and names its tracer and metrics, ``service`` is the gRPC service it serves."""

    async def main() -> None:
        settings = load_settings()
        setup_logging(settings.common.log_level)
        provider = setup_tracing(name)
        started = await start(settings)
        servicer = started.servicer

        async def on_stop() -> None:
            await started.stop()
            if provider is not None:
                provider.shutdown()

        await serve(
            name=name,
            listen=settings.listen,
            service_names=[service.full_name],
            register=lambda server: add_to_server(servicer, server),
            on_stop=on_stop,
            metrics_port=settings.common.metrics_port,
            active_streams=lambda: servicer.active_streams,
            load=servicer.load,
        )

    try:
        asyncio.run(main())
    except (SettingsError, ModelUnavailableError) as error:
        print(f"{name}: {error}", file=sys.stderr)
        sys.exit(2)
