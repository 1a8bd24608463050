"""Logging and OpenTelemetry set-up for every process, and W3C trace context in messages.

Tracing follows the standard ``OTEL_*`` variables: spans are exported over OTLP/gRPC when
``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and not at
all when ``OTEL_SDK_DISABLED=true``. The batch processor exports from its own thread, so the
event loop never waits on the network.
"""

from __future__ import annotations

import logging
import os
import sys

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from voice.v1 import audio_pb2

_PROPAGATOR = TraceContextTextMapPropagator()
_LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class _DetachNoiseFilter(logging.Filter):
    """Drops "Failed to detach context" from the gRPC instrumentation's streaming interceptors.

    A session-long stream that the client cancels closes the interceptor's generator in
    another context; OpenTelemetry catches the error and logs a traceback, and nothing else
    goes wrong (opentelemetry-python-contrib issue 2357, open). The spans are still recorded.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to detach context")


def setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format=_LOG_FORMAT, stream=sys.stderr, force=True)
    logging.getLogger("opentelemetry.context").addFilter(_DetachNoiseFilter())
    for noisy in ("grpc", "aiohttp.access", "faster_whisper", "opentelemetry"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))


def setup_tracing(service_name: str) -> TracerProvider | None:
    """Install the global tracer provider; returns it so the caller can shut it down."""
    # The SDK itself reads the other OTEL_* variables; this decides whether to export at all,
    # and names the service unless OTEL_SERVICE_NAME does.
    environ = os.environ
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    resource = Resource.create({SERVICE_NAME: environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def trace_context_message() -> audio_pb2.TraceContext:
    """The current span's W3C trace context, ready to ride in a per-turn message."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return audio_pb2.TraceContext(
        traceparent=carrier.get("traceparent", ""), tracestate=carrier.get("tracestate", "")
    )


def context_from_message(message: audio_pb2.TraceContext | None) -> otel_context.Context:
    """An OpenTelemetry context whose parent is the span named in a per-turn message."""
    if message is None or not message.traceparent:
        return otel_context.Context()
    carrier = {"traceparent": message.traceparent}
    if message.tracestate:
        carrier["tracestate"] = message.tracestate
    return _PROPAGATOR.extract(carrier, context=otel_context.Context())
