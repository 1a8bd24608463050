"""A real OTLP/gRPC trace receiver that keeps every span it is sent, for tests.

In process (tests/e2e/test_tracing.py): ``OtlpReceiver`` is the TraceService servicer; its
``spans`` are the received protos. As a program, where a collector such as Jaeger cannot be
had (tests/containers run it in a container in Jaeger's place)::

    python otlp_receiver.py --grpc 0.0.0.0:4317 --http 0.0.0.0:4318

serves OTLP/gRPC on ``--grpc`` and, on ``--http``, ``GET /spans``: every span received so far
as JSON (service, name, trace and parent ids in hex, attributes, event names). It needs only
grpcio, opentelemetry-proto and aiohttp (all in the gateway image) and imports nothing else of
the project, so it runs from a single mounted file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

log = logging.getLogger("otlp_receiver")


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    span: trace_pb2.Span

    @property
    def events(self) -> dict[str, int]:
        return {event.name: event.time_unix_nano for event in self.span.events}

    def attribute(self, key: str) -> str:
        for attribute in self.span.attributes:
            if attribute.key == key:
                value = attribute.value
                return value.string_value or str(value.int_value or value.double_value)
        return ""

    def as_json(self) -> dict[str, Any]:
        span = self.span
        return {
            "service": self.service,
            "name": span.name,
            "trace_id": span.trace_id.hex(),
            "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex(),
            "attributes": {a.key: self.attribute(a.key) for a in span.attributes},
            "events": list(self.events),
        }


class OtlpReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []

    async def Export(  # noqa: N802 - the OTLP method name
        self,
        request: trace_service_pb2.ExportTraceServiceRequest,
        context: grpc.aio.ServicerContext,
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = next(
                (
                    a.value.string_value
                    for a in resource_spans.resource.attributes
                    if a.key == "service.name"
                ),
                "",
            )
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(ReceivedSpan(service, span) for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.span.name == name]

    def in_trace(self, trace_id: bytes) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.span.trace_id == trace_id]


async def serve(grpc_address: str, http_host: str, http_port: int) -> None:
    receiver = OtlpReceiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    if not server.add_insecure_port(grpc_address):
        raise SystemExit(f"otlp_receiver: cannot listen on {grpc_address}")
    await server.start()

    async def spans(_request: web.Request) -> web.Response:
        return web.json_response([span.as_json() for span in receiver.spans])

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/spans", spans)
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, http_host, http_port).start()
    log.info("OTLP/gRPC on %s, spans at http://%s:%d/spans", grpc_address, http_host, http_port)
    try:
        await server.wait_for_termination()
    finally:
        await runner.cleanup()
        await server.stop(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc", default="0.0.0.0:4317", help="OTLP/gRPC listen address")
    parser.add_argument("--http", default="0.0.0.0:4318", help="where GET /spans is served")
    args = parser.parse_args(argv)
    host, _, port = args.http.rpartition(":")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.grpc, host or "0.0.0.0", int(port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
