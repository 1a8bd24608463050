"""A client that stays connected across turns and records when everything arrived.

``tools.client.talk`` plays one clip and collects one answer; ``LiveSession`` is for what happens
across turns: talking over the agent (barge-in), several turns on one socket, a stage failing
in between. Every event and audio frame is kept with its arrival time (``time.perf_counter``),
so tests can check the order of things and benchmarks can measure the gaps.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from tools.client import ClipAudio

FRAME_S = 0.02


@dataclass(frozen=True)
class Received:
    """An event (``data``) or an audio frame (``audio_bytes``), with its arrival time."""

    at: float
    data: dict[str, Any] | None = None
    audio_bytes: int = 0

    @property
    def type(self) -> str:
        return "audio" if self.data is None else str(self.data.get("type"))


class LiveSession:
    """One WebSocket session: send audio in real time, record what comes back."""

    def __init__(self, http: aiohttp.ClientSession, url: str, start: dict[str, Any] | None = None):
        self._http = http
        self._url = url
        self._start = start
        self.received: list[Received] = []
        self.close_code: int | None = None
        self.sent_voice_at: list[float] = []

    async def __aenter__(self) -> LiveSession:
        self.ws = await self._http.ws_connect(self._url)
        self._reader = asyncio.create_task(self._read())
        if self._start is not None:
            await self.ws.send_str(json.dumps({"type": "start", **self._start}))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        async for message in self.ws:
            now = time.perf_counter()
            if message.type == aiohttp.WSMsgType.BINARY:
                self.received.append(Received(now, audio_bytes=len(message.data)))
            elif message.type == aiohttp.WSMsgType.TEXT:
                self.received.append(Received(now, data=json.loads(message.data)))
        self.close_code = self.ws.close_code

    # ----------------------------------------------------------------- sending

    async def say(
        self,
        clip: ClipAudio,
        silence_s: float = 1.5,
        on_voice: Callable[[float], None] | None = None,
    ) -> None:
        """Stream the clip in real time (20 ms frames), then ``silence_s`` of silence.

        Frame k goes out at (k + 1) x 20 ms, once a microphone would have captured it.
        ``on_voice`` is called with the send time of the frame where the clip's speech starts.
        """
        frame = int(clip.sample_rate * FRAME_S) * 2
        voiced_from = clip.first_voiced_s()
        pcm = clip.pcm + b"\x00" * int(clip.sample_rate * 2 * silence_s)
        started = time.perf_counter()
        voiced_sent = False
        for index, offset in enumerate(range(0, len(pcm), frame)):
            await asyncio.sleep(max(0.0, started + (index + 1) * FRAME_S - time.perf_counter()))
            if self.ws.closed:
                return
            await self.ws.send_bytes(pcm[offset : offset + frame].ljust(frame, b"\x00"))
            if not voiced_sent and (offset + frame) / (2 * clip.sample_rate) > voiced_from:
                voiced_sent = True
                now = time.perf_counter()
                self.sent_voice_at.append(now)
                if on_voice is not None:
                    on_voice(now)

    async def keep_listening(self, seconds: float, clip_rate: int = 16000) -> None:
        await self.say(ClipAudio(b"", clip_rate), silence_s=seconds)

    async def silence_until(
        self, check: Callable[[], bool], timeout_s: float, clip_rate: int = 16000
    ) -> None:
        """Send silence in real time until ``check()`` holds (AssertionError on timeout)."""
        frame = b"\x00" * int(clip_rate * FRAME_S) * 2
        deadline = time.perf_counter() + timeout_s
        next_at = time.perf_counter()
        while not check():
            if time.perf_counter() > deadline or self.ws.closed:
                raise AssertionError(f"timed out; events so far: {self.types()}")
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await self.ws.send_bytes(frame)

    # ----------------------------------------------------------------- reading

    @property
    def events(self) -> list[dict[str, Any]]:
        return [r.data for r in self.received if r.data is not None]

    @property
    def audio_bytes(self) -> int:
        return sum(r.audio_bytes for r in self.received)

    def types(self) -> list[str]:
        return [r.type for r in self.received if r.data is not None]

    def first(self, kind: str, after: float = 0.0, **fields: Any) -> Received | None:
        """The first event of ``kind`` (with these field values) that arrived after ``after``."""
        for item in self.received:
            data = item.data
            wanted = {"type": kind, **fields}
            if (
                item.at > after
                and data is not None
                and all(data.get(k) == v for k, v in wanted.items())
            ):
                return item
        return None

    def audio_of(self, turn_id: str) -> list[Received]:
        """The audio frames of a turn: those after its ``audio_start`` and before the next one."""
        frames: list[Received] = []
        current: str | None = None
        for item in self.received:
            if item.type == "audio_start" and item.data is not None:
                current = item.data.get("turn_id")
            elif item.type == "audio" and current == turn_id:
                frames.append(item)
        return frames

    async def wait_for(self, check: Callable[[], bool], timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while not check():
            if time.perf_counter() > deadline:
                raise AssertionError(f"timed out; events so far: {self.types()}")
            await asyncio.sleep(0.01)
