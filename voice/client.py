"""A WebSocket client for the gateway: stream a WAV file as a user would, collect the answer.

``python -m voice.client --url ws://127.0.0.1:8000 --token TOKEN question.wav --out reply.wav``
streams the file in real time (paced frames), then silence until the agent has answered, prints
the transcript, the agent's text and the turn's latency waterfall, and saves the agent's audio.
The end-to-end tests and the benchmark use the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import wave
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

FRAME_MS = 20
VOICED_DBFS = -45.0


@dataclass
class ClipAudio:
    pcm: bytes
    sample_rate: int

    @staticmethod
    def from_wav(path: Path) -> ClipAudio:
        with wave.open(str(path), "rb") as wav:
            if wav.getnchannels() != 1 or wav.getsampwidth() != 2:
                raise ValueError(f"{path}: expected mono 16-bit PCM")
            return ClipAudio(wav.readframes(wav.getnframes()), wav.getframerate())

    def last_voiced_s(self) -> float:
        """Where the speech ends: the end of the last 10 ms window above -45 dBFS."""
        samples = np.frombuffer(self.pcm, dtype="<i2").astype(np.float32) / 32768.0
        window = self.sample_rate // 100
        count = len(samples) // window
        if count == 0:
            return 0.0
        rms = np.sqrt(np.mean(samples[: count * window].reshape(count, window) ** 2, axis=1))
        loud = np.nonzero(20 * np.log10(np.maximum(rms, 1e-10)) > VOICED_DBFS)[0]
        return float((loud[-1] + 1) * window / self.sample_rate) if loud.size else 0.0


@dataclass
class TurnResult:
    transcript: str = ""
    partials: list[str] = field(default_factory=list)
    agent_text: str = ""
    audio: bytearray = field(default_factory=bytearray)
    output_sample_rate: int = 0
    latency_ms: float | None = None
    final_transcript_ms: float | None = None
    first_text_ms: float | None = None
    waterfall: dict[str, float] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


async def talk(
    url: str,
    clip: ClipAudio,
    *,
    answer_timeout_s: float = 30.0,
    realtime: bool = True,
    start: dict[str, Any] | None = None,
) -> TurnResult:
    """Stream ``clip`` to ``url`` (``ws://host:port/ws/TOKEN``) and collect one turn."""
    result = TurnResult()
    speech_end_offset = clip.last_voiced_s()
    frame_bytes = clip.sample_rate * FRAME_MS // 1000 * 2
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        await ws.send_str(
            json.dumps({"type": "start", "sample_rate": clip.sample_rate, **(start or {})})
        )
        done = asyncio.Event()
        started = time.perf_counter()
        speech_end_at = started + speech_end_offset

        def since_speech_end() -> float:
            return (time.perf_counter() - speech_end_at) * 1000

        async def receive() -> None:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    if result.latency_ms is None:
                        result.latency_ms = since_speech_end()
                    result.audio.extend(message.data)
                    continue
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(message.data)
                result.events.append(data)
                kind = data.get("type")
                if kind == "ready":
                    result.output_sample_rate = data["output_sample_rate"]
                elif kind == "transcript":
                    if data["final"]:
                        result.transcript = data["text"]
                        result.final_transcript_ms = since_speech_end()
                    else:
                        result.partials.append(data["text"])
                elif kind == "agent_text":
                    if result.first_text_ms is None:
                        result.first_text_ms = since_speech_end()
                    result.agent_text += data["text"]
                elif kind == "turn_complete":
                    result.waterfall = data["latency"]
                    done.set()
                elif kind == "error":
                    result.errors.append(data)

        receiver = asyncio.create_task(receive())
        sent = 0
        silence = b"\x00" * frame_bytes
        deadline = started + len(clip.pcm) / (2 * clip.sample_rate) + answer_timeout_s
        while not done.is_set() and time.perf_counter() < deadline and not receiver.done():
            frame = clip.pcm[sent : sent + frame_bytes] if sent < len(clip.pcm) else silence
            if len(frame) < frame_bytes:
                frame += b"\x00" * (frame_bytes - len(frame))
            await ws.send_bytes(frame)
            sent += frame_bytes
            if realtime:
                delay = started + sent / (2 * clip.sample_rate) - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
        if not ws.closed:
            with contextlib.suppress(aiohttp.ClientConnectionResetError):
                await ws.send_str(json.dumps({"type": "stop"}))
            await ws.close()
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    return result


def _save_wav(path: Path, pcm: bytes, rate: int) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Talk to the voice agent with a WAV file.")
    parser.add_argument("wav", type=Path, help="mono 16-bit PCM WAV with one spoken question")
    parser.add_argument("--url", default="ws://127.0.0.1:8000", help="gateway base URL")
    parser.add_argument("--token", required=True, help="client token (make token)")
    parser.add_argument("--out", type=Path, help="save the agent's reply to this WAV file")
    args = parser.parse_args(argv)
    result = asyncio.run(
        talk(f"{args.url.rstrip('/')}/ws/{args.token}", ClipAudio.from_wav(args.wav))
    )
    print(f"you said:    {result.transcript!r}")
    print(f"agent said:  {result.agent_text!r}")
    print(f"agent audio: {len(result.audio) / 2 / max(result.output_sample_rate, 1):.2f} s")
    latency = "none" if result.latency_ms is None else f"{result.latency_ms:.0f} ms"
    print(f"end of speech -> first agent audio: {latency}")
    if result.waterfall:
        print(
            "gateway waterfall (ms): " + ", ".join(f"{k} {v}" for k, v in result.waterfall.items())
        )
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    if args.out and result.audio:
        _save_wav(args.out, bytes(result.audio), result.output_sample_rate)
        print(f"saved {args.out}")
    return 0 if result.latency_ms is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
