"""The peer pipeline's virtual environment and process, seen from the project's own venv."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import aiohttp

from launcher.cluster import free_port

ROOT = Path(__file__).resolve().parent.parent.parent
PEER_VENV = ROOT / ".venv-peer"
REQUIREMENTS = ROOT / "bench" / "peer" / "requirements.txt"
START_TIMEOUT_S = 240.0
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class PeerVenv:
    python: Path
    install_s: float | None  # None when it was already there
    size_mb: float


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _size_mb(folder: Path) -> float:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
    return round(total / 1e6, 1)


def ensure_venv(venv: Path = PEER_VENV) -> PeerVenv:
    """``.venv-peer/`` with ``bench/peer/requirements.txt``, created or updated when needed."""
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    digest = _digest(REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return PeerVenv(python, None, _size_mb(venv))
    print(f"==> Installing the peer pipeline (Pipecat) into {venv.name}/ (first use)", flush=True)
    started = time.perf_counter()
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    done = subprocess.run([*pip, "-r", str(REQUIREMENTS)], capture_output=True, text=True)
    # pip's notes about this machine's extra indexes ("Location ... is ignored") are noise.
    for line in (done.stdout + done.stderr).splitlines():
        if line.strip() and not line.startswith("WARNING: Location"):
            print(f"    {line}", flush=True)
    if done.returncode:
        raise SystemExit(f"error: pip could not install {REQUIREMENTS} (exit {done.returncode})")
    stamp.write_text(digest + "\n")
    elapsed = round(time.perf_counter() - started, 1)
    size = _size_mb(venv)
    print(f"    installed in {elapsed:.0f} s, {size:.0f} MB", flush=True)
    return PeerVenv(python, elapsed, size)


@dataclass(frozen=True)
class PeerConfig:
    """What the peer is given: the project's own model files and LLM settings."""

    whisper: Path
    voice: Path
    gguf: Path
    system_prompt: str
    max_tokens: int
    temperature: float
    llm_parallel: int
    llm_context: int

    def argv(self) -> list[str]:
        return [
            "--whisper",
            str(self.whisper),
            "--voice",
            str(self.voice),
            "--gguf",
            str(self.gguf),
            "--system-prompt",
            self.system_prompt,
            "--max-tokens",
            str(self.max_tokens),
            "--temperature",
            str(self.temperature),
            "--llm-parallel",
            str(self.llm_parallel),
            "--llm-context",
            str(self.llm_context),
        ]


class PeerStartError(RuntimeError):
    """The peer server exited or did not answer in time."""


@contextlib.asynccontextmanager
async def peer_server(
    python: Path, config: PeerConfig, log: TextIO
) -> AsyncIterator[tuple[str, float]]:
    """Runs the peer server on a free loopback port; yields its ws:// base URL and start time."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        str(python),
        "-m",
        "bench.peer.server",
        "--port",
        str(port),
        *config.argv(),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        await _wait_healthy(process, f"http://127.0.0.1:{port}/health")
        yield f"ws://127.0.0.1:{port}", round(time.perf_counter() - started, 1)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _wait_healthy(process: asyncio.subprocess.Process, url: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while True:
            if process.returncode is not None:
                raise PeerStartError(f"the peer server exited with {process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            if time.monotonic() > deadline:
                raise PeerStartError(f"the peer server did not answer {url} in time")
            await asyncio.sleep(0.3)
