"""The peer of ``make bench-peer``: a stock Pipecat 1.14 voice pipeline on a WebSocket.

Runs inside ``.venv-peer`` (``bench/peer/requirements.txt``), started by ``python -m
bench.peer``. It starts llama.cpp's OpenAI-compatible server (``bench/peer/llama.py``) on a
free loopback port, waits for its health, reads the system prompt once into its cache (as the
project's llm service does at start), then serves ``ws://127.0.0.1:PORT/ws/{token}``: one
Pipecat pipeline per connection, as Pipecat's FastAPI examples do, made of

    FastAPIWebsocketTransport input (Silero VAD in the user aggregator)
    -> WhisperSTTService (faster-whisper, tiny.en from a local CTranslate2 folder)
    -> user aggregator (end of turn: Smart Turn v3.2, LocalSmartTurnAnalyzerV3)
    -> OpenAILLMService (Qwen2.5 0.5B GGUF through llama.cpp's server)
    -> PiperTTSService (en_US-joe-medium from a local folder)
    -> FastAPIWebsocketTransport output (Pipecat's real-time audio pacing)
    -> assistant aggregator

with three :class:`~bench.peer.protocol.ProtocolTap` processors that only report what passes
(the gateway's events, for ``tools.client.talk``). Pipecat's defaults everywhere else: VAD,
turn analyzer, sentence aggregation before TTS, interruptions. Nothing is fetched from a
model hub (HF_HUB_OFFLINE=1; every model is a local path).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import uvicorn
from fastapi import FastAPI, WebSocket
from fastapi.responses import JSONResponse
from loguru import logger
from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import OutputTransportMessageUrgentFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import (
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.services.piper.tts import PiperTTSService
from pipecat.services.whisper.stt import WhisperSTTService
from pipecat.transcriptions.language import Language
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies
from pipecat.workers.runner import WorkerRunner

from bench.peer.protocol import GatewaySerializer, ProtocolTap, TurnState

INPUT_RATE = 16000
OUTPUT_RATE = 24000  # the gateway's default output rate
LLAMA_START_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _post(url: str, body: dict[str, object], timeout: float) -> bytes:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return bytes(response.read())


def start_llama(args: argparse.Namespace) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    command = [sys.executable, "-m", "bench.peer.llama", "--model", str(args.gguf)]
    slots = ["--parallel", str(args.llm_parallel), "--ctx", str(args.llm_context)]
    process = subprocess.Popen([*command, "--port", str(port), *slots])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + LLAMA_START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"llama.cpp's server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("llama.cpp's server did not become healthy")
        time.sleep(0.2)
    warm = {
        "messages": [
            {"role": "system", "content": args.system_prompt},
            {"role": "user", "content": "Hello."},
        ],
        "max_tokens": 1,
    }
    _post(f"{url}/v1/chat/completions", warm, timeout=60)
    return process, url


def make_app(args: argparse.Namespace, llm_url: str) -> FastAPI:
    app = FastAPI()
    voice = Path(args.voice)

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.websocket("/ws/{token}")
    async def session(websocket: WebSocket, token: str) -> None:
        await websocket.accept()
        await run_session(websocket, args, llm_url, voice)

    return app


async def run_session(websocket: WebSocket, args: argparse.Namespace, llm_url: str, voice: Path):
    state = TurnState(INPUT_RATE, OUTPUT_RATE)
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=GatewaySerializer(INPUT_RATE),
        ),
    )
    stt = WhisperSTTService(
        device="cpu",
        compute_type="int8",  # what the project's stt picks on a CPU
        settings=WhisperSTTService.Settings(model=args.whisper, language=Language.EN),
    )
    llm = OpenAILLMService(
        api_key="not-needed",
        base_url=f"{llm_url}/v1",
        settings=OpenAILLMService.Settings(
            model="qwen2.5-0.5b-instruct-q4_k_m",
            system_instruction=args.system_prompt,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
        ),
    )
    tts = PiperTTSService(
        download_dir=voice.parent,  # <voice>.onnx and .onnx.json are there: nothing to download
        settings=PiperTTSService.Settings(voice=voice.name.removesuffix(".onnx")),
    )
    context = LLMContext()
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=SileroVADAnalyzer(),
            user_turn_strategies=UserTurnStrategies(
                stop=[TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())]
            ),
        ),
    )
    pipeline = Pipeline(
        [
            transport.input(),
            stt,
            ProtocolTap(state, "stt"),
            user_aggregator,
            llm,
            ProtocolTap(state, "llm"),
            tts,
            ProtocolTap(state, "output"),
            transport.output(),
            assistant_aggregator,
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=INPUT_RATE, audio_out_sample_rate=OUTPUT_RATE),
    )
    runner = WorkerRunner(handle_sigint=False)

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport: object, _client: object) -> None:
        await worker.queue_frames([OutputTransportMessageUrgentFrame(message=state.ready())])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: object, _client: object) -> None:
        await runner.cancel()

    await runner.add_workers(worker)
    await runner.run()


def main() -> int:
    parser = argparse.ArgumentParser(description="A stock Pipecat pipeline on a WebSocket.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--whisper", required=True, help="CTranslate2 Whisper model folder")
    parser.add_argument("--voice", required=True, help="Piper voice .onnx (its .json beside)")
    parser.add_argument("--gguf", required=True, type=Path, help="the LLM's GGUF file")
    parser.add_argument("--system-prompt", required=True)
    parser.add_argument("--max-tokens", type=int, required=True)
    parser.add_argument("--temperature", type=float, required=True)
    parser.add_argument("--llm-parallel", type=int, default=1, help="llama.cpp slots")
    parser.add_argument("--llm-context", type=int, default=4096, help="context tokens per slot")
    parser.add_argument("--log-level", default="WARNING", help="Pipecat's (loguru) log level")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level=args.log_level)
    started = time.monotonic()
    llama, llm_url = start_llama(args)
    print(f"llama.cpp server ready at {llm_url} in {time.monotonic() - started:.1f}s", flush=True)
    try:
        uvicorn.run(make_app(args, llm_url), host="127.0.0.1", port=args.port, log_level="warning")
    finally:
        llama.terminate()
        try:
            llama.wait(timeout=10)
        except subprocess.TimeoutExpired:
            llama.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
