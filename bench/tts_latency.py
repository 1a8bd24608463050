"""``make bench-tts``: latency of the speech synthesis service with the embedded voice.

The real tts servicer runs in-process behind gRPC on loopback, as the gateway reaches it.
Realistic agent replies are streamed into it as token-sized deltas at the rate a language model
writes (30 tokens/s by default), and the client side measures:

- **first audio**: first text delta sent -> first audio frame received;
- **RTF**: time the engine spent synthesising / length of the audio it made (per reply);
- **underruns**: whether a client playing from the first frame on would ever have waited;
- **cancel**: a cancel sent while a chunk is being synthesised -> ``AudioEnd(cancelled)``
  received, and -> the synthesis worker free again (the engine really stopped);
- **overlap**: two consecutive chunks synthesised one after the other vs both at once.

Settings come from the environment as for the service; the phrase cache is off so repeats
measure synthesis. ``--engines edge,piper`` measures the Edge fallback path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from services.tts.__main__ import load_engine
from services.tts.chain import EngineChain
from services.tts.chunking import SpeakableChunker
from services.tts.engine import SpeechEngine
from services.tts.piper import PiperEngine
from services.tts.servicer import ChunkingConfig, TextToSpeechServicer
from services.tts.settings import TtsSettings
from voice.v1 import tts_pb2, tts_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
REPLIES = [
    "Sure! The weather in Paris today is mild, around 18 degrees, with a light breeze.",
    "Hello! How can I help you today?",
    "One moment, let me check that for you. Your train leaves at 10:30 from platform two.",
    "Good question. The Eiffel Tower is about 330 meters tall, and it opened in 1889.",
    "I'm sorry, I don't know that. Could you tell me a little more about what you need?",
    "Of course. Mix two cups of flour with one cup of water, then knead it for ten minutes.",
    "That costs $3.50 per pound, so two pounds would be $7.",
    "Dr. Smith's office opens at 9 a.m. on weekdays. Would you like me to call them?",
    "Great, your alarm is set for 6:45 tomorrow morning. Sleep well!",
    "Paris is the capital of France. It has about two million people living in the city.",
    "Yes. Drink plenty of water, rest, and see a doctor if the fever lasts more than 3 days.",
    "Here's a quick tip: press and hold the button for five seconds to reset the device.",
]
_TOKEN = re.compile(r"\s*[A-Za-z']+|\s*\d|\s*[^\w\s]|\s+")


def tokens(text: str) -> list[str]:  # roughly as a language model's tokenizer cuts English
    return _TOKEN.findall(text)


@dataclass
class Timing:
    """What every engine of the chain did: synthesis time, chunks in progress."""

    busy_s: float = 0.0
    active: int = 0
    chunk_started: asyncio.Event = field(default_factory=asyncio.Event)


class TimedEngine:
    """Wraps an engine to time its synthesis and to tell when a chunk is being made."""

    def __init__(self, inner: SpeechEngine, timing: Timing) -> None:
        self.inner = inner
        self.name = inner.name
        self.sample_rate = inner.sample_rate
        self.timing = timing

    def available(self) -> bool:
        return self.inner.available()

    def prepare(self) -> None:
        self.inner.prepare()

    async def stream(self, text: str, voice: str = "") -> AsyncGenerator[bytes, None]:
        started = time.perf_counter()
        self.timing.active += 1
        self.timing.chunk_started.set()
        try:
            async for piece in self.inner.stream(text, voice):
                yield piece
        finally:
            self.timing.active -= 1
            self.timing.busy_s += time.perf_counter() - started

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Reply:
    text: str
    first_audio_ms: float = 0.0
    first_chunk_text_ms: float = 0.0
    rtf: float = 0.0
    audio_s: float = 0.0
    underrun_ms: float = 0.0
    engine: str = ""


@dataclass
class Cancel:
    to_end_ms: float
    to_worker_free_ms: float | None
    frames_in_flight: int
    synthesising: bool


@dataclass
class Results:
    replies: list[Reply] = field(default_factory=list)
    cancels: list[Cancel] = field(default_factory=list)
    overlap: dict[str, Any] = field(default_factory=dict)


class Session:
    """One Synthesize stream, fed by the benchmark and read all the time (as the gateway does)."""

    def __init__(self, channel: grpc.aio.Channel, rate: int) -> None:
        self.rate = rate
        self.queue: asyncio.Queue[tts_pb2.SynthesizeRequest | None] = asyncio.Queue()
        self.received: asyncio.Queue[tuple[float, tts_pb2.SynthesizeResponse]] = asyncio.Queue()

        async def requests() -> AsyncIterator[tts_pb2.SynthesizeRequest]:
            config = tts_pb2.SynthesizeConfig(session_id="bench", sample_rate=rate)
            yield tts_pb2.SynthesizeRequest(config=config)
            while (request := await self.queue.get()) is not None:
                yield request

        self.call = tts_pb2_grpc.TextToSpeechServiceStub(channel).Synthesize(requests())
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while isinstance(response := await self.call.read(), tts_pb2.SynthesizeResponse):
            self.received.put_nowait((time.perf_counter(), response))

    def send(self, **fields: Any) -> None:
        self.queue.put_nowait(tts_pb2.SynthesizeRequest(**fields))

    async def read(self) -> tuple[float, tts_pb2.SynthesizeResponse]:  # and when it arrived
        return await self.received.get()

    async def close(self) -> None:
        self.queue.put_nowait(None)
        await self.reader


async def measure_reply(
    session: Session, timing: Timing, turn: str, text: str, tps: float, config: ChunkingConfig
) -> Reply:
    chunker = SpeakableChunker(config.first_min_words, config.first_max_words)
    first_chunk_at = 0.0

    async def feed() -> None:
        nonlocal first_chunk_at
        for token in tokens(text):
            session.send(text=tts_pb2.TextInput(turn_id=turn, text=token))
            if chunker.push(token) and not first_chunk_at:
                first_chunk_at = time.perf_counter()  # the service can now cut its first chunk
            await asyncio.sleep(1 / tps)
        session.send(flush=tts_pb2.FlushTurn(turn_id=turn))
        first_chunk_at = first_chunk_at or time.perf_counter()

    busy_before = timing.busy_s
    started = time.perf_counter()
    feeder = asyncio.create_task(feed())
    reply, first_at, samples, late = Reply(text), 0.0, 0, 0.0
    while not (item := await session.read())[1].HasField("end"):
        now, response = item
        if response.HasField("start"):
            reply.engine = response.start.engine
        elif response.HasField("audio"):
            if not first_at:
                first_at = now
            # A client playing from the first frame needs this one when the earlier ones end.
            late = max(late, now - (first_at + samples / session.rate))
            samples += len(response.audio.audio.pcm) // 2
    await feeder
    if item[1].end.error:
        raise RuntimeError(f"turn {turn} failed: {item[1].end.error}")
    reply.first_audio_ms = (first_at - started) * 1000
    reply.first_chunk_text_ms = (first_chunk_at - started) * 1000
    reply.audio_s = samples / session.rate
    reply.rtf = (timing.busy_s - busy_before) / reply.audio_s
    reply.underrun_ms = late * 1000
    return reply


async def measure_cancel(
    session: Session, timing: Timing, executor: ThreadPoolExecutor | None, turn: str, text: str
) -> Cancel:
    """Cancel while the second chunk is being synthesised (the first one is already out)."""
    session.send(text=tts_pb2.TextInput(turn_id=turn, text=text + " And that is all for now."))
    session.send(flush=tts_pb2.FlushTurn(turn_id=turn))
    while not (await session.read())[1].HasField("audio"):
        pass
    timing.chunk_started.clear()
    await timing.chunk_started.wait()
    await asyncio.sleep(0.02)  # into the chunk's synthesis
    synthesising = timing.active > 0
    loop = asyncio.get_running_loop()
    sent = time.perf_counter()
    session.send(cancel=tts_pb2.CancelSynthesis(turn_id=turn))
    # Queued behind the synthesis on the single worker: runs once the engine has stopped.
    free = loop.run_in_executor(executor, time.perf_counter) if executor else None
    frames = 0
    while not (item := await session.read())[1].HasField("end"):
        frames += item[0] > sent and item[1].HasField("audio")
    free_at = await free if free is not None else None
    return Cancel(
        to_end_ms=(item[0] - sent) * 1000,
        to_worker_free_ms=(free_at - sent) * 1000 if free_at is not None else None,
        frames_in_flight=frames,
        synthesising=synthesising,
    )


def measure_overlap(piper: PiperEngine, config: ChunkingConfig) -> dict[str, Any]:
    """First two chunks of each reply: one after the other, or both at once on two threads."""
    times: dict[str, list[float]] = {}

    def synthesize(text: str) -> float:
        for _ in piper.synthesize(text):
            pass
        return time.perf_counter()

    with ThreadPoolExecutor(2) as pool:
        for text in REPLIES:
            chunker = SpeakableChunker(config.first_min_words, config.first_max_words)
            chunks = (chunker.push(text) + chunker.flush())[:2]
            if len(chunks) < 2:
                continue
            start = time.perf_counter()
            serial = [synthesize(chunk) - start for chunk in chunks]
            start = time.perf_counter()
            futures = [pool.submit(synthesize, chunk) for chunk in chunks]
            overlapped = [future.result() - start for future in futures]
            for mode, done in (("serial", serial), ("overlapped", overlapped)):
                times.setdefault(f"{mode}_first_chunk_ms", []).append(done[0])
                times.setdefault(f"{mode}_both_ms", []).append(max(done))
    pairs = len(times.get("serial_both_ms", []))
    return {"pairs": pairs, **{key: stats(values, 1000) for key, values in times.items()}}


def stats(values: list[float], scale: float = 1.0) -> dict[str, float]:
    array = np.asarray(values) * scale
    quantiles = {"p50": 50, "p90": 90, "max": 100}
    return (
        {k: round(float(np.percentile(array, q)), 3) for k, q in quantiles.items()}
        if values
        else {}
    )


async def build_engines(settings: TtsSettings, executor: ThreadPoolExecutor) -> list[SpeechEngine]:
    """The service's engines; Piper on the benchmark's single worker, to time its cancel."""
    engines: list[SpeechEngine] = []
    for name in settings.engines:
        if name == "piper":
            piper = await asyncio.to_thread(PiperEngine, settings.threads, executor=executor)
            await asyncio.to_thread(piper.warm_up)
            engines.append(piper)
        else:
            engines.append(await load_engine(name, settings))
    return engines


async def run(args: argparse.Namespace) -> Results:
    environ = dict(os.environ)
    if args.engines:
        environ["TTS_ENGINES"] = args.engines
    settings = TtsSettings.from_env(environ)
    executor = ThreadPoolExecutor(1, thread_name_prefix="piper")
    engines = await build_engines(settings, executor)
    timing = Timing()
    chain_engines = [TimedEngine(engine, timing) for engine in engines]
    config = ChunkingConfig(
        settings.first_chunk_min_words, settings.first_chunk_max_words, settings.frame_ms
    )
    servicer = TextToSpeechServicer(EngineChain(list[SpeechEngine](chain_engines)), config)
    server = grpc.aio.server()
    tts_pb2_grpc.add_TextToSpeechServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    results = Results()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            session = Session(channel, args.rate)
            turn = 0
            for _ in range(args.repeat):
                for text in REPLIES:
                    turn += 1
                    reply = await measure_reply(session, timing, f"r{turn}", text, args.tps, config)
                    results.replies.append(reply)
            for index in range(args.cancels):
                turn += 1
                text = REPLIES[index % len(REPLIES)]
                speaking = next(e for e in chain_engines if e.available())
                free = executor if speaking.name == "piper" else None  # Piper's single worker
                results.cancels.append(
                    await measure_cancel(session, timing, free, f"c{turn}", text)
                )
            await session.close()
    finally:
        await server.stop(0)
        await servicer.aclose()
    piper = next((e for e in engines if isinstance(e, PiperEngine)), None)
    if piper is not None and args.overlap:
        results.overlap = await asyncio.to_thread(measure_overlap, piper, config)
    executor.shutdown()
    return results


def report(results: Results, args: argparse.Namespace) -> dict[str, Any]:
    replies, cancels = results.replies, results.cancels
    summary: dict[str, Any] = {
        "replies": len(replies),
        "engines": sorted({r.engine for r in replies}),
        "first_audio_ms": stats([r.first_audio_ms for r in replies]),
        "first_chunk_text_ms": stats([r.first_chunk_text_ms for r in replies]),
        "tts_first_audio_ms": stats([r.first_audio_ms - r.first_chunk_text_ms for r in replies]),
        "rtf": stats([r.rtf for r in replies]),
        "audio_s": stats([r.audio_s for r in replies]),
        "replies_with_underrun": sum(r.underrun_ms > 0 for r in replies),
        "worst_underrun_ms": round(max((r.underrun_ms for r in replies), default=0.0), 1),
        "cancel_to_end_ms": stats([c.to_end_ms for c in cancels]),
        "cancel_to_worker_free_ms": stats(
            [c.to_worker_free_ms for c in cancels if c.to_worker_free_ms is not None]
        ),
        "cancels_while_synthesising": sum(c.synthesising for c in cancels),
        "frames_in_flight_at_cancel": sum(c.frames_in_flight for c in cancels),
        "overlap": results.overlap,
    }
    print(f"\n  TTS latency, {len(replies)} replies at {args.tps:g} tokens/s, {args.rate} Hz")
    print(f"  engines: {', '.join(summary['engines'])}")
    timings = ("first_audio_ms", "first_chunk_text_ms", "tts_first_audio_ms", "rtf", "audio_s")
    for key in (*timings, "cancel_to_end_ms", "cancel_to_worker_free_ms"):
        if row := summary[key]:
            print(f"  {key:<26} " + "  ".join(f"{q} {row[q]:>8.3f}" for q in ("p50", "p90", "max")))
    print(
        f"  underruns: {summary['replies_with_underrun']} of {len(replies)} replies (worst "
        f"{summary['worst_underrun_ms']} ms); cancels while synthesising: "
        f"{summary['cancels_while_synthesising']} of {len(cancels)}; frames received after a "
        f"cancel (in flight): {summary['frames_in_flight_at_cancel']}"
    )
    if overlap := results.overlap:
        print(f"  overlap ({overlap['pairs']} chunk pairs), ms to first chunk / to both:")
        for mode in ("serial", "overlapped"):
            first, both = overlap[f"{mode}_first_chunk_ms"], overlap[f"{mode}_both_ms"]
            print(
                f"    {mode:<11} first p50 {first['p50']:>7.1f} p90 {first['p90']:>7.1f}"
                f"   both p50 {both['p50']:>7.1f} p90 {both['p90']:>7.1f}"
            )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tps", type=float, default=30.0, help="tokens per second of the text")
    parser.add_argument("--rate", type=int, default=24000, help="the client's sample rate")
    parser.add_argument("--repeat", type=int, default=2, help="passes over the replies")
    parser.add_argument("--cancels", type=int, default=12, help="cancel trials")
    parser.add_argument("--engines", default="", help="override TTS_ENGINES, e.g. edge,piper")
    parser.add_argument("--no-overlap", dest="overlap", action="store_false")
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    summary = report(results, args)
    out = args.out or ROOT / "bench" / "results" / f"tts-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "args": {k: str(v) for k, v in vars(args).items()},
        "summary": summary,
        "replies": [asdict(r) for r in results.replies],
        "cancels": [asdict(c) for c in results.cancels],
    }
    out.write_text(json.dumps(record, indent=2))
    print(f"  results: {out}")


if __name__ == "__main__":
    main()
