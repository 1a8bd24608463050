"""Server-side echo cancellation: the agent's own voice taken out of the client's microphone.

On a speakerphone or a phone line the agent's voice comes back through the microphone; heard
by stt, it would interrupt the agent. The gateway knows the audio it sent, so each session
keeps a model of the client's playback (``PlayoutModel``) and runs WebRTC's audio processing
module (AEC3, from ``livekit.rtc``) on the microphone with that audio as the far end:

- a chunk of the agent's audio starts playing at max(when it was sent, when the chunk before
  it ends); ``interrupted`` drops what had not played; ``ducked`` / ``resumed`` scale what has
  not played yet by the client's playback gain; a client's ``played`` report (ms of a turn
  played by then) moves what has not played to where the client says it is;
- for each microphone frame (which covers [arrival - its length, arrival]) the far-end audio
  playing up to the frame's end is fed first (``process_reverse_stream``), then the frame
  itself (``process_stream``), in 10 ms frames; the cleaned audio goes to stt.

Everything runs at the microphone's rate; the agent's audio is resampled to it. Rates the
module cannot frame in 10 ms (only 8, 16, 32 and 48 kHz are taken) are passed through as they
are. ``EchoTransport`` wraps a session's transport to see what goes to the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.transports.base import ClientAudio, ClientInput, StartRequest, Transport
from gateway.turns.actions import ClientOutput, CloseAudio, OpenAudio, SendAudio, SendEvent
from voice.audio import Resampler

log = logging.getLogger(__name__)

APM_RATES = (8000, 16000, 32000, 48000)
FRAME_S = 0.01
# The canceller's work (about 0.1 ms of CPU per 10 ms, mostly in WebRTC's native code, which
# runs without the GIL) runs on these threads, never on the event loop.
_WORKERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="echo")
# A client's playback report that differs from the model by less than this is not applied.
PLAYED_TOLERANCE_S = 0.02


@dataclass
class _Segment:
    """Far-end samples that play from sample ``start`` on (the canceller's timeline)."""

    start: int
    samples: np.ndarray  # float32
    turn_id: str

    @property
    def end(self) -> int:
        return self.start + len(self.samples)


class PlayoutModel:
    """When each sample of the agent's audio plays at the client, on a sample timeline at
    ``rate`` whose sample 0 plays at ``origin`` (``time.perf_counter`` seconds)."""

    def __init__(self, rate: int, origin: float) -> None:
        self.rate = rate
        self.origin = origin
        self._segments: deque[_Segment] = deque()
        self._end = 0  # where the last scheduled audio ends
        self._turn_id = ""
        self._turn_start: dict[str, int] = {}
        self._resampler: Resampler | None = None
        # The client's playback gain from each sample on: (sample, gain), in order.
        self._gains: list[tuple[int, float]] = [(0, 1.0)]
        self.turn_id = ""

    def index(self, at: float) -> int:
        return max(0, round((at - self.origin) * self.rate))

    def open(self, source_rate: int) -> None:
        self._resampler = Resampler(source_rate, self.rate)

    def push(self, pcm: bytes, sent_at: float, *, last: bool = False) -> None:
        if self._resampler is None:
            return
        resampled = self._resampler.process(pcm, last=last)
        if not resampled:
            return
        samples = np.frombuffer(resampled, dtype="<i2").astype(np.float32)
        start = max(self.index(sent_at), self._end)
        self._turn_start.setdefault(self.turn_id, start)
        self._segments.append(_Segment(start, samples, self.turn_id))
        self._end = start + len(samples)

    def close(self, sent_at: float) -> None:
        self.push(b"", sent_at, last=True)
        self._resampler = None

    def flush(self, at: float) -> None:
        """The client dropped what had not played by ``at``."""
        self._cut(self.index(at))
        self._resampler = None
        self.set_gain(1.0, at)

    def set_gain(self, gain: float, at: float) -> None:
        """The client plays what has not played by ``at`` (and what comes later) at ``gain``."""
        cut = self.index(at)
        self._gains = [g for g in self._gains if g[0] < cut] + [(cut, gain)]

    def played(self, turn_id: str, ms: float, at: float) -> None:
        """The client says ``ms`` of ``turn_id``'s audio had played by ``at``: what of the turn
        has not played yet moves to where the client is."""
        start = self._turn_start.get(turn_id)
        if start is None:
            return
        now = self.index(at)
        heard = start + round(ms / 1000 * self.rate)  # where that sample was due to play
        shift = now - heard
        if abs(shift) < PLAYED_TOLERANCE_S * self.rate:
            return
        moved: deque[_Segment] = deque()
        for segment in self._segments:
            if segment.turn_id != turn_id or segment.end <= min(now, heard):
                moved.append(segment)
                continue
            cut = min(max(heard - segment.start, 0), len(segment.samples))
            # Before the sample the client is at: what is left to play (if the client is
            # behind), or nothing (it is ahead: it has played that already).
            keep = cut if shift > 0 else min(cut, max(now - segment.start, 0))
            if keep > 0:
                moved.append(_Segment(segment.start, segment.samples[:keep], turn_id))
            if cut < len(segment.samples):
                start_at = segment.start + cut + shift
                moved.append(_Segment(start_at, segment.samples[cut:], turn_id))
        self._segments = deque(sorted(moved, key=lambda s: s.start))
        self._turn_start[turn_id] = start + shift
        self._end = max([now] + [s.end for s in self._segments])

    def take(self, begin: int, end: int) -> np.ndarray:
        """The far-end signal over samples [begin, end) (silence where nothing plays); what
        ends before ``end`` is forgotten."""
        out = np.zeros(end - begin, dtype=np.float32)
        for segment in self._segments:
            lo, hi = max(begin, segment.start), min(end, segment.end)
            if lo < hi:
                out[lo - begin : hi - begin] += segment.samples[
                    lo - segment.start : hi - segment.start
                ]
        self._apply_gains(out, begin)
        while self._segments and self._segments[0].end <= end:
            self._segments.popleft()
        return out

    def _apply_gains(self, out: np.ndarray, begin: int) -> None:
        end = begin + len(out)
        gains = self._gains
        for number, (start, gain) in enumerate(gains):
            stop = gains[number + 1][0] if number + 1 < len(gains) else end
            lo, hi = max(begin, start), min(end, stop)
            if lo < hi and gain != 1.0:
                out[lo - begin : hi - begin] *= gain
        # Gains that ended before this span are forgotten (the last one still holds).
        while len(gains) > 1 and gains[1][0] <= begin:
            gains.pop(0)

    def _cut(self, index: int) -> None:
        kept: deque[_Segment] = deque()
        for segment in self._segments:
            if segment.start < index:
                segment.samples = segment.samples[: index - segment.start]
                kept.append(segment)
        self._segments = kept
        self._end = min(self._end, max(index, max((s.end for s in kept), default=0)))


class EchoCanceller:
    """One session's canceller: ``far_*`` calls describe what the client plays, ``process``
    cleans each microphone frame (PCM16 at ``rate``)."""

    def __init__(self, rate: int, origin: float, *, noise_suppression: bool = False) -> None:
        from livekit import rtc  # imported here: only sessions with echo cancelling load it

        self._rtc = rtc
        self.rate = rate
        self.active = rate in APM_RATES
        self.playout = PlayoutModel(rate, origin)
        self._frame = int(rate * FRAME_S)
        self._apm = (
            rtc.AudioProcessingModule(
                echo_cancellation=True,
                noise_suppression=noise_suppression,
                high_pass_filter=True,
            )
            if self.active
            else None
        )
        self._far_fed = 0  # far-end samples fed so far
        self._mic_pending = np.zeros(0, dtype=np.int16)
        # Updates of the playout model, applied in order by the thread that processes.
        self._updates: deque[Callable[[PlayoutModel], None]] = deque()

    def update(self, change: Callable[[PlayoutModel], None]) -> None:
        """Change the playout model before the next microphone frame is processed (safe from
        any thread: the change runs on the thread that processes)."""
        self._updates.append(change)

    def process(self, pcm: bytes, at: float) -> bytes:
        """The microphone's frame that arrived at ``at``, with the echo taken out. Whole 10 ms
        frames come out; a remainder waits for the next frame (under 10 ms)."""
        while self._updates:
            self._updates.popleft()(self.playout)
        if self._apm is None:
            return pcm
        mic = np.frombuffer(pcm, dtype="<i2")
        end = self.playout.index(at)
        # The pending samples arrived with an earlier frame: they sit right before this one.
        samples = np.concatenate((self._mic_pending, mic))
        first = end - len(samples)
        whole = len(samples) // self._frame * self._frame
        out = np.empty(whole, dtype=np.int16)
        for offset in range(0, whole, self._frame):
            self._feed_far(first + offset + self._frame)
            frame = samples[offset : offset + self._frame].astype("<i2").tobytes()
            audio = self._rtc.AudioFrame(bytearray(frame), self.rate, 1, self._frame)
            self._apm.process_stream(audio)
            out[offset : offset + self._frame] = np.frombuffer(audio.data, dtype=np.int16)
        self._mic_pending = samples[whole:].copy()
        return out.astype("<i2").tobytes()

    def _feed_far(self, until: int) -> None:
        assert self._apm is not None
        if self._far_fed < until - 20 * self._frame:
            # Nothing was fed for a while (no microphone audio came): skip to near now.
            self._far_fed = until - 20 * self._frame
        while self._far_fed + self._frame <= until:
            begin = self._far_fed
            far = self.playout.take(begin, begin + self._frame)
            pcm = np.clip(far, -32768, 32767).astype("<i2").tobytes()
            self._apm.process_reverse_stream(
                self._rtc.AudioFrame(bytearray(pcm), self.rate, 1, self._frame)
            )
            self._far_fed += self._frame


class EchoTransport:
    """A session's transport, seen through by its echo canceller: the agent's audio and the
    playback events that go out, and the client's ``played`` reports that come in, update the
    canceller's model of the client's playback. Everything else is the transport's own."""

    def __init__(self, inner: Transport, clock: Any, *, noise_suppression: bool = False) -> None:
        self._inner = inner
        self._clock = clock  # () -> seconds, time.perf_counter in the gateway
        self._noise_suppression = noise_suppression
        self.canceller = self._new_canceller()
        self._mic: asyncio.Queue[tuple[ClientAudio, Callable[[bytes, float], None]]] = (
            asyncio.Queue()
        )
        self._cleaner: asyncio.Task[None] | None = None

    def _new_canceller(self) -> EchoCanceller:
        canceller = EchoCanceller(
            self._inner.input_rate, self._clock(), noise_suppression=self._noise_suppression
        )
        if not canceller.active:
            log.info("echo cancelling is off for a %d Hz microphone", canceller.rate)
        return canceller

    @property
    def input_rate(self) -> int:
        return self._inner.input_rate

    @input_rate.setter
    def input_rate(self, value: int) -> None:
        self._inner.input_rate = value

    @property
    def output_rate(self) -> int:
        return self._inner.output_rate

    @output_rate.setter
    def output_rate(self, value: int) -> None:
        self._inner.output_rate = value

    @property
    def codec(self) -> str:
        return self._inner.codec

    @codec.setter
    def codec(self, value: str) -> None:
        self._inner.codec = value

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def receive(self) -> ClientInput | None:
        item = await self._inner.receive()
        # A playback report (``played``: turn_id, ms, at), whatever the transport calls it.
        if item is not None and type(item).__name__.lower().endswith("played"):
            turn_id, ms = getattr(item, "turn_id", None), getattr(item, "ms", None)
            if isinstance(turn_id, str) and isinstance(ms, int | float):
                at = getattr(item, "at", None)
                when = at if isinstance(at, float) else self._clock()
                self.canceller.update(lambda p: p.played(turn_id, float(ms), when))
        return item

    def configure(self, request: StartRequest) -> None:
        self._inner.configure(request)
        if self._inner.input_rate != self.canceller.rate:
            self.canceller = self._new_canceller()

    async def send(self, output: ClientOutput) -> None:
        self.observe(output)
        await self._inner.send(output)

    async def send_event(self, kind: str, **fields: Any) -> None:
        self.observe(SendEvent(kind, fields))
        await self._inner.send_event(kind, **fields)

    def observe(self, output: ClientOutput) -> None:
        """Note what the client will play: the change is applied before the next microphone
        frame is cleaned, with the time it went out."""
        now, update = self._clock(), self.canceller.update
        if isinstance(output, SendAudio):
            pcm = output.pcm
            update(lambda p: p.push(pcm, now))
        elif isinstance(output, OpenAudio):
            rate = output.sample_rate
            update(lambda p: p.open(rate))
        elif isinstance(output, CloseAudio):
            update(lambda p: p.close(now))
        elif isinstance(output, SendEvent):
            kind, fields = output.type, output.fields
            if kind == "audio_start":
                turn_id = str(fields.get("turn_id", ""))
                update(lambda p: setattr(p, "turn_id", turn_id))
            elif kind == "interrupted":
                update(lambda p: p.flush(now))
            elif kind == "ducked":
                gain = float(fields.get("gain", 0.0))
                update(lambda p: p.set_gain(gain, now))
            elif kind == "resumed":
                update(lambda p: p.set_gain(1.0, now))

    # ----------------------------------------------------------------- the microphone

    def clean(self, audio: ClientAudio, deliver: Callable[[bytes, float], None]) -> None:
        """Clean the client's frame off the event loop, then ``deliver(pcm, arrived_at)``,
        frames in the order they came."""
        if self._cleaner is None:
            self._cleaner = asyncio.create_task(self._clean_all(), name="echo-cleaner")
        self._mic.put_nowait((audio, deliver))

    async def _clean_all(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            audio, deliver = await self._mic.get()
            canceller = self.canceller
            try:
                pcm = await loop.run_in_executor(_WORKERS, canceller.process, audio.pcm, audio.at)
            except Exception:
                # The microphone must keep reaching stt: this frame goes on as it came.
                log.exception("echo cancelling failed on a frame; passing it through")
                pcm = audio.pcm
            if pcm:
                deliver(pcm, audio.at)

    async def stop(self) -> None:
        if self._cleaner is not None:
            self._cleaner.cancel()
            await asyncio.gather(self._cleaner, return_exceptions=True)

    def heard_text(self, estimate: str) -> str:
        return self._inner.heard_text(estimate)

    async def hang_up(self, *, at: float, reason: str) -> None:
        await self._inner.hang_up(at=at, reason=reason)

    async def close(self, *, code: int, reason: str) -> None:
        await self._inner.close(code=code, reason=reason)
