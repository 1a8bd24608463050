"""The four processes of the cluster on loopback: started, health-checked, stopped cleanly.

Used by ``make run``, the end-to-end tests and the benchmark, so all three run the cluster the
same way. Each process's output is prefixed with its name; a process that dies while starting
fails the start with its last lines of output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.auth import sign_token

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("stt", "llm", "tts")
COLORS = {"stt": "36", "llm": "35", "tts": "33", "gateway": "32"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ClusterConfig:
    gateway_port: int = 8000
    stt_port: int = 50051
    llm_port: int = 50052
    tts_port: int = 50053
    host: str = "127.0.0.1"
    token_secret: str = ""
    # Extra environment for every process (on top of this process's environment).
    env: Mapping[str, str] = field(default_factory=dict)
    # Extra environment per process name.
    env_for: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    output: TextIO | None = None
    start_timeout_s: float = 180.0
    # Where each stage serves its Prometheus metrics (the gateway serves /metrics itself).
    metrics_ports: Mapping[str, int] = field(
        default_factory=lambda: {"stt": 9101, "llm": 9102, "tts": 9103}
    )

    @staticmethod
    def on_free_ports(**kwargs: object) -> ClusterConfig:
        return ClusterConfig(
            gateway_port=free_port(),
            stt_port=free_port(),
            llm_port=free_port(),
            tts_port=free_port(),
            metrics_ports={name: free_port() for name in SERVICES},
            **kwargs,  # type: ignore[arg-type]
        )


class ClusterStartError(RuntimeError):
    pass


@dataclass
class _Process:
    name: str
    proc: asyncio.subprocess.Process
    tail: deque[str]
    pump: asyncio.Task[None]


class Cluster:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.secret = config.token_secret or secrets.token_urlsafe(32)
        self._processes: list[_Process] = []
        self._color = bool(config.output and config.output.isatty())

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.config.gateway_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.config.gateway_port}"

    def token(self, subject: str = "dev", ttl_s: float = 24 * 3600) -> str:
        return sign_token(self.secret, subject, ttl_s)

    def _address(self, port: int) -> str:
        return f"{self.config.host}:{port}"

    def _environment(self, name: str) -> dict[str, str]:
        c = self.config
        env = dict(os.environ)
        env.update(
            {
                "PYTHONPATH": str(ROOT),
                "PYTHONUNBUFFERED": "1",
                "STT_LISTEN": self._address(c.stt_port),
                "LLM_LISTEN": self._address(c.llm_port),
                "TTS_LISTEN": self._address(c.tts_port),
                "GATEWAY_HOST": c.host,
                "GATEWAY_PORT": str(c.gateway_port),
                "GATEWAY_STT_ADDRESS": self._address(c.stt_port),
                "GATEWAY_LLM_ADDRESS": self._address(c.llm_port),
                "GATEWAY_TTS_ADDRESS": self._address(c.tts_port),
                "GATEWAY_TOKEN_SECRET": self.secret,
                "OTEL_SERVICE_NAME": name,
            }
        )
        if name in c.metrics_ports:
            env["METRICS_PORT"] = str(c.metrics_ports[name])
        env.update(c.env)
        env.update(c.env_for.get(name, {}))
        return env

    async def start(self) -> None:
        started = time.perf_counter()
        for name in (*SERVICES, "gateway"):
            await self._spawn(name)
        try:
            await asyncio.wait_for(self._wait_healthy(), self.config.start_timeout_s)
        except (TimeoutError, ClusterStartError) as error:
            await self.stop()
            raise ClusterStartError(
                f"the cluster did not start: {error}\n{self._tails()}"
            ) from None
        self._log("launcher", f"all four processes healthy in {time.perf_counter() - started:.1f}s")

    async def _spawn(self, name: str) -> None:
        module = "gateway" if name == "gateway" else f"services.{name}"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            cwd=ROOT,
            env=self._environment(name),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
        tail: deque[str] = deque(maxlen=40)
        pump = asyncio.create_task(self._pump(name, proc, tail))
        self._processes = [p for p in self._processes if p.name != name]
        self._processes.append(_Process(name, proc, tail, pump))

    async def kill(self, name: str) -> None:
        """Kill one process at once (SIGKILL), as a crash would (for failure tests)."""
        process = next(p for p in self._processes if p.name == name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.proc.pid, signal.SIGKILL)
        await process.proc.wait()
        await asyncio.gather(process.pump, return_exceptions=True)

    async def terminate(self, name: str, grace_s: float = 30.0) -> int:
        """Send SIGTERM to one process and wait for it to exit; returns its exit code."""
        process = next(p for p in self._processes if p.name == name)
        with contextlib.suppress(ProcessLookupError):
            process.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.proc.wait(), grace_s)
        await asyncio.gather(process.pump, return_exceptions=True)
        return code

    async def restart(self, name: str) -> None:
        """Start one stopped process again and wait until the cluster is healthy."""
        await self._spawn(name)
        await asyncio.wait_for(self._wait_healthy(), self.config.start_timeout_s)

    async def _pump(self, name: str, proc: asyncio.subprocess.Process, tail: deque[str]) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip()
            tail.append(line)
            self._log(name, line)

    def _log(self, name: str, line: str) -> None:
        out = self.config.output
        if out is None:
            return
        label = f"{name:>8} |"
        if self._color:
            label = f"\033[{COLORS.get(name, '37')}m{label}\033[0m"
        print(f"{label} {line}", file=out, flush=True)

    def _tails(self) -> str:
        return "\n".join(
            f"--- last output of {p.name} (exit code {p.proc.returncode}) ---\n" + "\n".join(p.tail)
            for p in self._processes
        )

    def pids(self) -> dict[str, int]:
        """Each running process's pid (for memory figures in load tests)."""
        return {p.name: p.proc.pid for p in self._processes if p.proc.returncode is None}

    def dead(self) -> list[str]:
        return [p.name for p in self._processes if p.proc.returncode is not None]

    async def _wait_healthy(self) -> None:
        c = self.config
        pending = {"stt": c.stt_port, "llm": c.llm_port, "tts": c.tts_port}
        while pending:
            if dead := self.dead():
                raise ClusterStartError(f"{', '.join(dead)} exited while starting")
            for name, port in list(pending.items()):
                if await _grpc_serving(self._address(port)):
                    del pending[name]
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as http:
            while True:
                if dead := self.dead():
                    raise ClusterStartError(f"{', '.join(dead)} exited while starting")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.http_url}/health") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.2)

    async def wait_any_exit(self) -> str:
        """Wait until any process exits; returns its name."""
        waits = {asyncio.create_task(p.proc.wait()): p.name for p in self._processes}
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return waits[done.pop()]

    async def stop(self, grace_s: float = 10.0) -> None:
        # The gateway first, so sessions end before the stages they use.
        for process in reversed(self._processes):
            if process.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.proc.wait(), grace_s)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.proc.pid, signal.SIGKILL)
                    await process.proc.wait()
        for process in self._processes:
            process.pump.cancel()
        await asyncio.gather(*(p.pump for p in self._processes), return_exceptions=True)
        self._processes.clear()

    async def __aenter__(self) -> Cluster:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()


async def _grpc_serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            response = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1.0
            )
        except grpc.aio.AioRpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
