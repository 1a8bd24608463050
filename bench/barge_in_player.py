"""The barge-in bench's client: a microphone and a loudspeaker as a real client has them.

- The **loudspeaker** plays the agent's audio in real time from its arrival: a chunk starts at
  max(its arrival, the end of the one before). ``ducked`` sets the gain of what has not played
  yet at once, ``resumed`` restores it, ``interrupted`` drops what has not played. What came
  out is kept sample by sample (``audible``), with the gain that applied to each sample, and
  ``played`` reports (ms of the turn's audio played so far) go back every 200 ms while a turn
  plays.
- The **microphone** hands a 20 ms frame over at (k + 1) x 20 ms; it hears the user's clips
  placed on its timeline (``speak``) and, with an echo path, the loudspeaker's output
  ``echo_db`` lower and ``echo_delay_ms`` later.

All times are ``time.perf_counter`` seconds; the timelines start at ``origin``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import numpy as np
import soxr

MIC_RATE = 16000
FRAME_S = 0.02
REPORT_S = 0.2
MAX_S = 180.0  # the longest session the timelines hold


@dataclass
class Event:
    at: float
    data: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.data.get("type"))


@dataclass
class Chunk:
    """Agent audio as the loudspeaker scheduled it: samples [start, end) of ``audible``."""

    turn_id: str
    arrived: float
    start: int
    end: int


@dataclass
class EchoPath:
    attenuation_db: float
    delay_ms: float


@dataclass
class Player:
    ws: aiohttp.ClientWebSocketResponse
    out_rate: int
    echo: EchoPath | None = None
    origin: float = field(default_factory=time.perf_counter)
    events: list[Event] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.raw = np.zeros(int(MAX_S * self.out_rate), dtype=np.float32)
        self.turn_of = np.full(len(self.raw), -1, dtype=np.int32)  # index into turns
        self.turns: list[str] = []
        self.mic = np.zeros(int(MAX_S * MIC_RATE), dtype=np.float32)
        # The loudspeaker's gain from each output sample on: (sample, gain), in order.
        self.gains: list[tuple[int, float]] = [(0, 1.0)]
        self._end = 0  # where the scheduled audio ends
        self._turn = ""
        self.frames_sent = 0
        self._closed = False
        # ``played`` reports go out until the gateway answers one as an unknown message.
        self.reports = True

    # ------------------------------------------------------------------ the loudspeaker

    def out_index(self, at: float) -> int:
        return max(0, round((at - self.origin) * self.out_rate))

    def _on_audio(self, data: bytes, at: float) -> None:
        samples = np.frombuffer(data, dtype="<i2").astype(np.float32)
        start = max(self.out_index(at), self._end)
        end = min(start + len(samples), len(self.raw))
        self.raw[start:end] = samples[: end - start]
        if self._turn not in self.turns:
            self.turns.append(self._turn)
        self.turn_of[start:end] = self.turns.index(self._turn)
        self.chunks.append(Chunk(self._turn, at, start, end))
        self._end = end

    def _on_event(self, data: dict[str, Any], at: float) -> None:
        kind = data.get("type")
        now = self.out_index(at)
        if kind == "audio_start":
            self._turn = str(data.get("turn_id"))
        elif kind == "error" and data.get("code") in ("unknown_type", "invalid_message"):
            self.reports = False
        elif kind == "ducked":
            self._set_gain(now, float(data.get("gain", 0.0)))
        elif kind == "resumed":
            self._set_gain(now, 1.0)
        elif kind == "interrupted":
            self.raw[now : self._end] = 0.0
            self.turn_of[now : self._end] = -1
            self._end = min(self._end, now)
            self._set_gain(now, 1.0)

    def _set_gain(self, index: int, gain: float) -> None:
        self.gains = [g for g in self.gains if g[0] < index] + [(index, gain)]

    def gain_curve(self, until: int) -> np.ndarray:
        curve = np.ones(until, dtype=np.float32)
        for number, (start, gain) in enumerate(self.gains):
            stop = self.gains[number + 1][0] if number + 1 < len(self.gains) else until
            curve[min(start, until) : min(stop, until)] = gain
        return curve

    def audible(self, until: int | None = None) -> np.ndarray:
        """What the loudspeaker played (or will play, as things stand), sample by sample."""
        until = len(self.raw) if until is None else until
        sound: np.ndarray = self.raw[:until] * self.gain_curve(until)
        return sound

    def played_samples(self, turn_id: str, at: float) -> float:
        if turn_id not in self.turns:
            return 0.0
        now = self.out_index(at)
        return float(np.count_nonzero(self.turn_of[:now] == self.turns.index(turn_id)))

    # ------------------------------------------------------------------ the microphone

    def speak(self, pcm16: bytes, at: float) -> tuple[float, float]:
        """Put a 16 kHz clip on the microphone's timeline from ``at`` (not before the frame
        being captured now); returns the (start, end) times it occupies."""
        start = max(round((at - self.origin) * MIC_RATE), (self.frames_sent + 1) * 320)
        samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float32)
        end = min(start + len(samples), len(self.mic))
        self.mic[start:end] += samples[: end - start]
        return self.origin + start / MIC_RATE, self.origin + end / MIC_RATE

    def _mic_frame(self, k: int) -> bytes:
        lo, hi = k * 320, (k + 1) * 320
        frame = self.mic[lo:hi].copy()
        if self.echo is not None:
            frame += self._echo_of(lo, hi) * 10 ** (-self.echo.attenuation_db / 20)
        return np.clip(frame, -32768, 32767).astype("<i2").tobytes()

    def _echo_of(self, lo: int, hi: int) -> np.ndarray:
        """The loudspeaker's output over microphone samples [lo, hi), ``delay_ms`` late,
        band-limited to the microphone's rate as a real capture path is (soxr, with margins
        that keep the window's edges out of it)."""
        assert self.echo is not None
        delay = round(self.echo.delay_ms / 1000 * MIC_RATE)
        margin = 320
        first = lo - delay - margin  # in microphone samples
        if hi - delay <= 0:
            return np.zeros(hi - lo, dtype=np.float32)
        ratio = self.out_rate / MIC_RATE
        start = max(0, round(first * ratio))
        stop = round((hi - delay + margin) * ratio)
        window = self.audible(stop)[start:]
        resampled = soxr.resample(window, self.out_rate, MIC_RATE)
        offset = round(start / ratio)
        echo = np.zeros(hi - lo, dtype=np.float32)
        begin = lo - delay - offset
        for i in range(hi - lo):
            j = begin + i
            if 0 <= j < len(resampled) and lo - delay + i >= 0:
                echo[i] = resampled[j]
        return echo

    # ------------------------------------------------------------------ the session

    async def run(self) -> None:
        """Read the socket and send the microphone until ``close``."""
        reader = asyncio.create_task(self._read())
        try:
            k = 0
            while not self._closed and not self.ws.closed:
                await asyncio.sleep(max(0.0, self.origin + (k + 1) * FRAME_S - time.perf_counter()))
                await self.ws.send_bytes(self._mic_frame(k))
                self.frames_sent = k = k + 1
                if k % round(REPORT_S / FRAME_S) == 0:
                    await self._report()
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _report(self) -> None:
        now = time.perf_counter()
        index = self.out_index(now)
        if self.reports and self._turn and index < self._end:
            ms = round(self.played_samples(self._turn, now) / self.out_rate * 1000)
            await self.ws.send_str(json.dumps({"type": "played", "turn_id": self._turn, "ms": ms}))

    async def _read(self) -> None:
        async for message in self.ws:
            now = time.perf_counter()
            if message.type == aiohttp.WSMsgType.BINARY:
                self._on_audio(message.data, now)
            elif message.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                self.events.append(Event(now, data))
                self._on_event(data, now)

    def close(self) -> None:
        self._closed = True

    # ------------------------------------------------------------------ reading

    def first(self, kind: str, after: float = 0.0, **fields: Any) -> Event | None:
        for event in self.events:
            wanted = all(event.data.get(k) == v for k, v in fields.items())
            if event.at > after and event.type == kind and wanted:
                return event
        return None

    def all(self, kind: str, **fields: Any) -> list[Event]:
        return [
            e
            for e in self.events
            if e.type == kind and all(e.data.get(k) == v for k, v in fields.items())
        ]

    async def wait(self, check: Any, timeout_s: float) -> bool:
        deadline = time.perf_counter() + timeout_s
        while not check():
            if time.perf_counter() > deadline or self.ws.closed:
                return False
            await asyncio.sleep(0.01)
        return True

    def audible_windows(self, turn_id: str, threshold_dbfs: float = -50.0) -> np.ndarray:
        """Start times of the 10 ms windows in which ``turn_id``'s audio was audible."""
        if turn_id not in self.turns:
            return np.zeros(0)
        until = self._end
        sound = self.audible(until) * (self.turn_of[:until] == self.turns.index(turn_id))
        size = self.out_rate // 100
        count = until // size
        if count == 0:
            return np.zeros(0)
        windows = sound[: count * size].reshape(count, size)
        rms = np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1)) / 32768
        loud = np.flatnonzero(20 * np.log10(rms + 1e-12) > threshold_dbfs)
        return self.origin + loud * size / self.out_rate
