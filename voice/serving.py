"""The gRPC server bootstrap every service uses.

It adds the standard health service (serving once the engines are loaded), server reflection,
OpenTelemetry server instrumentation, and a graceful shutdown on SIGTERM or SIGINT: health turns
to NOT_SERVING, then ``stop(grace)`` lets open streams finish for a while before they are cut.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

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
) -> None:
    """Run a gRPC server on ``listen`` until SIGTERM or SIGINT, then shut down gracefully.

    With ``metrics_port``, Prometheus metrics are served over HTTP there: the open streams,
    and the process's own CPU and memory figures.
    """
    if metrics_port:
        serve_metrics(name, metrics_port, active_streams)
    server = grpc.aio.server(interceptors=_interceptors(), options=SERVER_OPTIONS)
    register(server)
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
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
    if on_stop is not None:
        await on_stop()
    log.info("%s stopped", name)
