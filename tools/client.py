"""A WebSocket client for the gateway: stream a WAV file as a user would, collect the answer.

``python -m tools.client --url ws://127.0.0.1:8000 --token TOKEN question.wav --out reply.wav``
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
from functools import cached_property
from pathlib import Path
from typing import Any

import aiohttp

from tools.acoustics import PlaybackClock, SpeechBounds, speech_bounds
from voice.audio import Resampler
from voice.opus import OpusDecoder, OpusEncoder

FRAME_MS = 20


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

    @cached_property
    def bounds(self) -> SpeechBounds | None:
        """Where the speech in the clip starts and ends (tools/acoustics.py); None if silent."""
        return speech_bounds(self.pcm, self.sample_rate)

    def last_voiced_s(self) -> float:
        """The clip's acoustic end of speech (seconds from its start; 0 when nothing is voiced)."""
        return 0.0 if self.bounds is None else self.bounds.end_s

    def first_voiced_s(self) -> float:
        """Where the speech starts: the first run of voiced 10 ms frames (tools/acoustics.py)."""
        return 0.0 if self.bounds is None else self.bounds.start_s


@dataclass
class TurnResult:
    """The agent's answer to the clip: its last user turn, the one that ended after the speech.

    A long clip may be cut into several user turns at its pauses; ``finals`` has every final
    transcript, and the answer measured is the one to the turn that ended after the speech.
    Times ending in ``_ms`` count from the clip's acoustic end of speech (``speech_end_s``).
    """

    transcript: str = ""
    finals: list[str] = field(default_factory=list)
    partials: list[str] = field(default_factory=list)
    agent_text: str = ""
    audio: bytearray = field(default_factory=bytearray)
    output_sample_rate: int = 0
    # End of speech -> the first 10 ms of the answer above -50 dBFS, as a client plays it.
    latency_ms: float | None = None
    # End of speech -> the answer's first binary frame (audible or not).
    first_frame_ms: float | None = None
    final_transcript_ms: float | None = None
    first_text_ms: float | None = None
    waterfall: dict[str, float] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    # Binary payload bytes on the socket, both ways (what the codec costs in bandwidth).
    wire_bytes_sent: int = 0
    wire_bytes_received: int = 0
    audio_seconds_sent: float = 0.0
    # Where the clip's speech ended (seconds from its start), and the answer's first frame and
    # first audible audio on the same clip timeline (so other definitions can be computed).
    speech_end_s: float = 0.0
    first_frame_s: float | None = None
    first_audible_s: float | None = None


class _Listener:
    """Reads the server's events and keeps what belongs to the answer turn."""

    def __init__(self, result: TurnResult, started_at: float, codec: str) -> None:
        self.result = result
        self.started_at = started_at
        self.speech_end_at = started_at + result.speech_end_s
        self._decoder = OpusDecoder() if codec == "opus" else None
        self._resampler: Resampler | None = None
        self._clock: PlaybackClock | None = None
        self.answer_turn: str | None = None
        self.audio_turn: str | None = None
        self.done = asyncio.Event()

    def since_speech_end(self, at: float | None = None) -> float:
        return ((time.perf_counter() if at is None else at) - self.speech_end_at) * 1000

    def on_audio(self, data: bytes, arrived_at: float) -> None:
        self.result.wire_bytes_received += len(data)
        if self.answer_turn is None or self.audio_turn != self.answer_turn:
            return
        pcm = data if self._decoder is None else self._decoder.decode(data)
        if self._clock is None:
            decoder = self._decoder
            rate = self.result.output_sample_rate if decoder is None else decoder.sample_rate
            self._clock = PlaybackClock(rate)
        self._clock.feed(pcm, arrived_at)
        result = self.result
        if result.first_frame_ms is None and self._clock.first_frame_at is not None:
            result.first_frame_ms = self.since_speech_end(self._clock.first_frame_at)
            result.first_frame_s = self._clock.first_frame_at - self.started_at
        if result.latency_ms is None and self._clock.first_audible_at is not None:
            result.latency_ms = self.since_speech_end(self._clock.first_audible_at)
            result.first_audible_s = self._clock.first_audible_at - self.started_at
        result.audio.extend(self._pcm(pcm))

    def _pcm(self, pcm: bytes) -> bytes:
        """Opus packets decode at 48 kHz: resampled to the rate the session announced."""
        if self._decoder is None:
            return pcm
        if self._resampler is None:
            self._resampler = Resampler(self._decoder.sample_rate, self.result.output_sample_rate)
        return self._resampler.process(pcm)

    def on_event(self, data: dict[str, Any]) -> None:
        result = self.result
        result.events.append(data)
        kind = data.get("type")
        turn_id = data.get("turn_id")
        if kind == "ready":
            result.output_sample_rate = data["output_sample_rate"]
        elif kind == "transcript" and data["final"]:
            if data["text"].strip():
                result.finals.append(data["text"].strip())
                result.transcript = " ".join(result.finals)
            if time.perf_counter() >= self.speech_end_at and data["text"].strip():
                self.answer_turn = turn_id
                result.final_transcript_ms = self.since_speech_end()
                result.agent_text, result.first_text_ms = "", None
        elif kind == "transcript":
            result.partials.append(data["text"])
        elif kind == "audio_start":
            self.audio_turn = turn_id
        elif kind == "agent_text" and turn_id == self.answer_turn:
            if result.first_text_ms is None:
                result.first_text_ms = self.since_speech_end()
            result.agent_text += data["text"]
        elif kind == "turn_complete" and turn_id == self.answer_turn:
            result.waterfall = data["latency"]
            self.done.set()
        elif kind == "error":
            result.errors.append(data)


async def talk(
    url: str,
    clip: ClipAudio,
    *,
    answer_timeout_s: float = 30.0,
    realtime: bool = True,
    start: dict[str, Any] | None = None,
    speech_end_s: float | None = None,
) -> TurnResult:
    """Stream ``clip`` to ``url`` (``ws://host:port/ws/TOKEN``) and collect the agent's answer.

    Frames go out as a microphone hands them over: frame k of 20 ms at (k + 1) x 20 ms after
    the start. ``speech_end_s`` is where the speech in the clip ends (default: its acoustic end,
    tools/acoustics.py). ``start`` may ask for ``"codec": "opus"``: the clip is then sent as Opus
    packets, and the agent's Opus audio is decoded back to PCM16 in the result.
    """
    result = TurnResult()
    result.speech_end_s = clip.last_voiced_s() if speech_end_s is None else speech_end_s
    frame_bytes = clip.sample_rate * FRAME_MS // 1000 * 2
    frame_s = FRAME_MS / 1000
    codec = str((start or {}).get("codec", "pcm16"))
    encoder = OpusEncoder(clip.sample_rate) if codec == "opus" else None
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        hello = {"type": "start", "sample_rate": clip.sample_rate, **(start or {})}
        await ws.send_str(json.dumps(hello))
        started = time.perf_counter()
        listener = _Listener(result, started, codec)

        async def receive() -> None:
            async for message in ws:
                if message.type == aiohttp.WSMsgType.BINARY:
                    listener.on_audio(message.data, time.perf_counter())
                elif message.type == aiohttp.WSMsgType.TEXT:
                    listener.on_event(json.loads(message.data))
                else:
                    break

        receiver = asyncio.create_task(receive())
        sent = 0
        index = 0
        silence = b"\x00" * frame_bytes
        deadline = started + len(clip.pcm) / (2 * clip.sample_rate) + answer_timeout_s
        while not listener.done.is_set() and time.perf_counter() < deadline:
            if realtime:
                # Frame k has been captured only at the end of its interval.
                delay = started + (index + 1) * frame_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            if receiver.done() or listener.done.is_set():
                break
            frame = clip.pcm[sent : sent + frame_bytes] if sent < len(clip.pcm) else silence
            if len(frame) < frame_bytes:
                frame += b"\x00" * (frame_bytes - len(frame))
            for payload in [frame] if encoder is None else encoder.encode(frame):
                await ws.send_bytes(payload)
                result.wire_bytes_sent += len(payload)
            result.audio_seconds_sent += frame_s
            sent += frame_bytes
            index += 1
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
    parser.add_argument(
        "--codec", choices=("pcm16", "opus"), default="pcm16", help="audio on the socket"
    )
    args = parser.parse_args(argv)
    result = asyncio.run(
        talk(
            f"{args.url.rstrip('/')}/ws/{args.token}",
            ClipAudio.from_wav(args.wav),
            start={"codec": args.codec},
        )
    )
    print(f"you said:    {result.transcript!r}")
    print(f"agent said:  {result.agent_text!r}")
    print(f"agent audio: {len(result.audio) / 2 / max(result.output_sample_rate, 1):.2f} s")
    print(
        f"on the socket ({args.codec}): {result.wire_bytes_sent} bytes sent, "
        f"{result.wire_bytes_received} received"
    )

    def ms(value: float | None) -> str:
        return "none" if value is None else f"{value:.0f} ms"

    print(f"end of speech -> first audible agent audio: {ms(result.latency_ms)}")
    print(f"end of speech -> first agent audio frame:   {ms(result.first_frame_ms)}")
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
