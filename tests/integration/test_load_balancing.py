"""Load reports over real gRPC, and the gateway's replica choice from them: two real tts
replicas (the instant engine), each serving voice.v1.LoadService beside its stream."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from gateway.upstream import LoadMonitor, StageReplicas, Upstreams
from services.tts.instant import InstantEngine
from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from voice.load import serve_load
from voice.v1 import load_pb2, load_pb2_grpc, tts_pb2, tts_pb2_grpc

pytestmark = pytest.mark.integration


@dataclass
class TtsReplica:
    address: str
    servicer: TextToSpeechServicer


@asynccontextmanager
async def tts_replica() -> AsyncIterator[TtsReplica]:
    servicer = TextToSpeechServicer(InstantEngine(), ChunkingConfig(2, 4, 20))
    server = grpc.aio.server()
    tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(servicer, server)
    serve_load(server, servicer.load)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield TtsReplica(f"127.0.0.1:{port}", servicer)
    finally:
        await server.stop(0)


class BrokenLoad(load_pb2_grpc.LoadServiceServicer):
    """A replica whose load report fails (a bug, a half-started process)."""

    async def GetLoad(  # noqa: N802
        self, request: load_pb2.GetLoadRequest, context: grpc.aio.ServicerContext
    ) -> load_pb2.GetLoadResponse:
        raise RuntimeError("garbage")


@asynccontextmanager
async def broken_replica() -> AsyncIterator[str]:
    server = grpc.aio.server()
    load_pb2_grpc.add_LoadServiceServicer_to_server(BrokenLoad(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


def closed_port_address() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def upstreams_over(addresses: list[str]) -> Upstreams:
    stage = StageReplicas("tts", addresses[0])
    stage.update(addresses)
    return Upstreams({"tts": stage})


def config_request() -> tts_pb2.SynthesizeRequest:
    return tts_pb2.SynthesizeRequest(config=tts_pb2.SynthesizeConfig(session_id="s"))


class OpenStream:
    """A session-long Synthesize stream held open (its config sent, nothing more)."""

    def __init__(self, call: Any) -> None:
        self.call = call

    @staticmethod
    async def on(upstreams: Upstreams) -> OpenStream:
        gate = asyncio.Event()

        async def requests() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
            yield config_request()
            await gate.wait()

        stream = OpenStream(upstreams.opener("tts")(requests()))
        await stream.call.initial_metadata()  # the replica accepted the config
        return stream

    def close(self) -> None:
        self.call.cancel()


async def streams_open(replica: TtsReplica, count: int) -> None:
    for _ in range(200):
        if replica.servicer.active_streams == count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{replica.address}: {replica.servicer.active_streams} streams")


async def test_a_replica_reports_its_streams_and_first_audio_times() -> None:
    async with tts_replica() as replica:
        upstreams = upstreams_over([replica.address])
        try:
            stream = await OpenStream.on(upstreams)
            await streams_open(replica, 1)
            channel = upstreams.stages["tts"].replicas[replica.address].channel
            response = await load_pb2_grpc.LoadServiceStub(channel).GetLoad(
                load_pb2.GetLoadRequest()
            )
            assert response.report.stage == "tts"
            assert response.report.active_streams == 1
            assert not response.report.draining
            stream.close()
        finally:
            await upstreams.close()


async def test_the_new_session_goes_to_the_less_loaded_replica() -> None:
    async with tts_replica() as first, tts_replica() as second:
        upstreams = upstreams_over([first.address, second.address])
        monitor = LoadMonitor(upstreams)
        held: list[OpenStream] = []
        try:
            # Load the first replica from outside this gateway (another gateway's sessions).
            other = upstreams_over([first.address])
            held += [await OpenStream.on(other), await OpenStream.on(other)]
            await streams_open(first, 2)
            await monitor.poll_once()
            held.append(await OpenStream.on(upstreams))
            await streams_open(second, 1)
            assert first.servicer.active_streams == 2
            # The next one still balances: 2 and 1 -> the second again (its own count is 1,
            # the first's report says 2).
            held.append(await OpenStream.on(upstreams))
            await streams_open(second, 2)
            await other.close()
        finally:
            for stream in held:
                stream.close()
            await upstreams.close()


async def test_a_draining_replica_gets_no_new_sessions() -> None:
    async with tts_replica() as draining, tts_replica() as busy:
        upstreams = upstreams_over([draining.address, busy.address])
        monitor = LoadMonitor(upstreams)
        held: list[OpenStream] = []
        try:
            other = upstreams_over([busy.address])
            held += [await OpenStream.on(other) for _ in range(3)]
            await streams_open(busy, 3)
            draining.servicer.load.draining = True  # what serve() sets at SIGTERM
            await monitor.poll_once()
            held += [await OpenStream.on(upstreams) for _ in range(2)]
            await streams_open(busy, 5)
            assert draining.servicer.active_streams == 0
            await other.close()
        finally:
            for stream in held:
                stream.close()
            await upstreams.close()


async def test_dead_and_garbled_replicas_are_skipped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = closed_port_address()
    async with tts_replica() as alive, broken_replica() as broken:
        upstreams = upstreams_over([dead, broken, alive.address])
        monitor = LoadMonitor(upstreams, poll_s=0.3)
        held: list[OpenStream] = []
        try:
            with caplog.at_level(logging.WARNING, logger="gateway.upstream"):
                await monitor.poll_once()
            messages = caplog.text
            assert dead in messages and broken in messages
            replicas = upstreams.stages["tts"].replicas
            assert not replicas[dead].reachable and not replicas[broken].reachable
            held += [await OpenStream.on(upstreams) for _ in range(3)]
            await streams_open(alive, 3)
            # The monitor's loop keeps going over them.
            task = asyncio.create_task(monitor.run())
            await asyncio.sleep(0.7)
            assert not task.done()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            for stream in held:
                stream.close()
            await upstreams.close()
