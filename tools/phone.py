"""A caller through Twilio, simulated: the voice webhook, then the media stream, as Twilio does.

``call`` posts the incoming-call webhook signed as Twilio signs it, reads the TwiML's stream URL
and token, opens the media stream and speaks Twilio's protocol (docs/protocol.md, "Phone
calls"): ``connected``, ``start``, 20 ms ``media`` messages of mu-law 8 kHz (the clip converted,
frame k sent at (k + 1) x 20 ms, then line silence), ``dtmf`` and ``stop``. What the gateway sends
back is played as a phone plays it (``PhoneLine``): in order and in real time; each ``mark`` is
echoed when the audio before it has played; ``clear`` drops what was still to play and echoes
its marks at once. The end-to-end tests and ``make bench-phone`` use it.

``python -m tools.phone --url http://127.0.0.1:8000 --auth-token TOKEN question.wav``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import aiohttp

from gateway.phone import VOICE_PATH, twilio_signature
from tools.acoustics import PlaybackClock
from tools.client import ClipAudio
from voice.audio import Resampler
from voice.mulaw import MULAW_RATE, MulawDecoder, MulawEncoder

FRAME_MS = 20
FRAME_BYTES = MULAW_RATE * FRAME_MS // 1000  # mu-law: one byte a sample
LINE_SILENCE = b"\xff" * FRAME_BYTES  # mu-law's zero


def caller_transcripts(gateway_log: str, call_sid: str) -> list[str]:
    """The caller's final transcripts, from the gateway's DEBUG log (LOG_LEVEL=DEBUG): Twilio's
    protocol has no place for them."""
    pattern = re.compile(rf"call {re.escape(call_sid)}: the caller said (['\"])(.*)\1$", re.M)
    return [text for _, text in pattern.findall(gateway_log)]


def phone_audio(clip: ClipAudio) -> bytes:
    """The clip as a phone line carries it: 8 kHz mu-law."""
    pcm = Resampler(clip.sample_rate, MULAW_RATE).process(clip.pcm, last=True)
    return MulawEncoder().encode(pcm)


@dataclass
class Played:
    """One thing the gateway sent, as the phone took it (``kind``: media, mark or clear)."""

    kind: str
    at: float
    name: str = ""
    samples: int = 0
    pcm: bytes = b""  # media: the audio, decoded to PCM16 at 8 kHz


@dataclass
class CallResult:
    call_sid: str = ""
    stream_sid: str = ""
    # What the caller heard, PCM16 at 8 kHz (audio cleared away before playing is not in it).
    heard: bytearray = field(default_factory=bytearray)
    # Every message from the gateway, in order (media decoded).
    received: list[Played] = field(default_factory=list)
    marks_echoed: list[str] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    # The answer is the call's last reply (the one to the caller's last turn; a long clip may
    # be answered at its pauses too). End of speech -> its first audible audio, played from
    # arrival as the browser client does (ms), and -> its first media. ``answered_early``: its
    # audio began before the end of speech (the turn ended at a pause inside the clip).
    answered_early: bool = False
    latency_ms: float | None = None
    first_frame_ms: float | None = None
    speech_end_s: float = 0.0
    closed_by_gateway: bool = False
    close_code: int | None = None
    invalid: list[str] = field(default_factory=list)

    def marks_sent(self) -> list[str]:
        return [item.name for item in self.received if item.kind == "mark"]


class PhoneLine:
    """Plays the gateway's audio in real time and answers its marks as Twilio does."""

    def __init__(self, stream_sid: str, result: CallResult) -> None:
        self._sid = stream_sid
        self._result = result
        # ("media", pcm, arrived at) or ("mark", name, arrived at), in order.
        self._queue: list[tuple[str, bytes, float]] = []
        self._wake = asyncio.Event()
        self._decoder = MulawDecoder()
        self.last_media_at = 0.0
        # When the last ``r<reply>.end`` mark arrived: a reply's audio was all sent.
        self.last_end_at = 0.0
        self.outbox: list[dict[str, Any]] = []

    def take(self, message: dict[str, Any], now: float) -> None:
        kind = message.get("event")
        result = self._result
        if message.get("streamSid") != self._sid:
            result.invalid.append(f"{kind} without this stream's streamSid")
        if kind == "media":
            pcm = self._decoder.decode(base64.b64decode(message["media"]["payload"]))
            result.received.append(Played("media", now, samples=len(pcm) // 2, pcm=pcm))
            self._queue.append(("media", pcm, now))
            self.last_media_at = now
        elif kind == "mark":
            name = str(message["mark"]["name"])
            result.received.append(Played("mark", now, name=name))
            if name.endswith(".end"):
                self.last_end_at = now
            self._queue.append(("mark", name.encode(), now))
        elif kind == "clear":
            result.received.append(Played("clear", now))
            result.clears.append(now)
            marks = [item for k, item, _ in self._queue if k == "mark"]
            self._queue.clear()
            for mark in marks:
                self._echo(mark.decode())
        else:
            result.invalid.append(f"unknown event {kind!r}")
        self._wake.set()

    def idle(self) -> bool:
        return not self._queue

    def first_media_since(self, since: float) -> float | None:
        """When the first of the gateway's audio after ``since`` arrived."""
        for item in self._result.received:
            if item.kind == "media" and item.at > since:
                return item.at
        return None

    def _echo(self, name: str) -> None:
        """Answer a mark (sent with the caller's next media message: one writer per socket)."""
        self._result.marks_echoed.append(name)
        self.outbox.append({"event": "mark", "mark": {"name": name}})

    async def play(self) -> None:
        """The phone's speaker: takes the queue in order, audio at its real duration."""
        cursor = time.perf_counter()
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                cursor = max(cursor, time.perf_counter())
                continue
            kind, item, _ = self._queue.pop(0)
            if kind == "mark":
                self._echo(item.decode())
                continue
            start = max(cursor, time.perf_counter())
            self._result.heard.extend(item)
            cursor = start + len(item) / 2 / MULAW_RATE
            await asyncio.sleep(max(cursor - time.perf_counter(), 0.0))


def replies(received: list[Played]) -> dict[str, list[Played]]:
    """The media of each reply, by the reply's marks (``r<n>.<k>`` follows its media); media
    dropped by a ``clear`` before any mark belongs to no reply."""
    by_reply: dict[str, list[Played]] = {}
    pending: list[Played] = []
    for item in received:
        if item.kind == "media":
            pending.append(item)
        elif item.kind == "mark":
            by_reply.setdefault(item.name.split(".")[0], []).extend(pending)
            pending = []
        else:
            pending = []
    return {reply: media for reply, media in by_reply.items() if media}


def _time_the_answer(result: CallResult, speech_end_at: float) -> None:
    answers = replies(result.received)
    if not answers:
        return
    media = answers[list(answers)[-1]]
    result.answered_early = media[0].at < speech_end_at
    clock = PlaybackClock(MULAW_RATE)
    for item in media:
        clock.feed(item.pcm, item.at)
    if clock.first_frame_at is not None:
        result.first_frame_ms = (clock.first_frame_at - speech_end_at) * 1000
    if clock.first_audible_at is not None:
        result.latency_ms = (clock.first_audible_at - speech_end_at) * 1000


def _stream_from_twiml(twiml: str) -> tuple[str, str]:
    """The stream URL and token of ``<Response><Connect><Stream>`` (ValueError if none)."""
    stream = ElementTree.fromstring(twiml).find("./Connect/Stream")
    token = None if stream is None else stream.find("./Parameter[@name='token']")
    if stream is None or token is None:
        raise ValueError(f"the TwiML connects no stream with a token: {twiml}")
    return stream.get("url", ""), token.get("value", "")


async def answer(
    http: aiohttp.ClientSession, base_url: str, auth_token: str, call_sid: str
) -> tuple[int, str]:
    """Post the incoming-call webhook as Twilio does: (status, body)."""
    params = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "+15005550006",
        "To": "+15005550001",
    }
    url = base_url.rstrip("/") + VOICE_PATH
    signature = twilio_signature(auth_token, url, {k: [v] for k, v in params.items()})
    headers = {"X-Twilio-Signature": signature}
    async with http.post(url, data=params, headers=headers) as response:
        return response.status, await response.text()


@dataclass(frozen=True)
class FollowUp:
    """What the caller does next: says a clip or presses keys (a string of DTMF digits).

    ``barge_in_after_s``: this long after the agent's answer began playing (talking over it);
    None: once the answer has played in full."""

    say: ClipAudio | str
    barge_in_after_s: float | None = None


async def call(
    base_url: str,
    auth_token: str,
    clip: ClipAudio,
    *,
    then: list[FollowUp] | None = None,
    listen_s: float = 30.0,
    quiet_s: float = 0.5,
    hang_up: bool = True,
) -> CallResult:
    """Call the agent at ``base_url`` (what GATEWAY_PUBLIC_URL says), say ``clip``, then each
    of ``then`` in turn. An answer is over once a reply's last audio (the gateway's
    ``r<n>.end`` mark, sent after the caller's speech ended) has played, and ``quiet_s`` more.
    The call ends after the last answer, after ``listen_s`` without one, or when the gateway
    closes the stream; with ``hang_up`` the caller then sends ``stop`` and closes.
    """
    result = CallResult(
        call_sid="CA" + secrets.token_hex(16), stream_sid="MZ" + secrets.token_hex(16)
    )
    result.speech_end_s = clip.last_voiced_s()
    async with aiohttp.ClientSession() as http:
        status, twiml = await answer(http, base_url, auth_token, result.call_sid)
        if status != 200:
            raise RuntimeError(f"the webhook answered {status}: {twiml}")
        url, token = _stream_from_twiml(twiml)
        async with http.ws_connect(url) as ws:
            caller = _Caller(ws, result, listen_s, quiet_s)
            await caller.run(token, clip, list(then or []), hang_up)
    return result


class _Caller:
    """Twilio's side of the stream: the caller's media every 20 ms, the script, the line."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        result: CallResult,
        listen_s: float,
        quiet_s: float,
    ) -> None:
        self._ws = ws
        self._result = result
        self._listen_s = listen_s
        self._quiet_s = quiet_s
        self._sequence = 0
        self._line = PhoneLine(result.stream_sid, result)
        self._audio = bytearray()
        # When the caller last began saying or pressing something, and when its speech (the
        # clip's acoustic end) or its keys were over.
        self._began_at = 0.0
        self._said_at = 0.0
        self._account = "AC" + "0" * 32

    async def _send(self, kind: str, **fields: Any) -> None:
        self._sequence += 1
        message: dict[str, Any] = {"event": kind, "sequenceNumber": str(self._sequence)}
        message.update(fields)
        message["streamSid"] = self._result.stream_sid
        await self._ws.send_str(json.dumps(message))

    async def _receive(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            self._line.take(json.loads(message.data), time.perf_counter())
        self._result.closed_by_gateway = True
        self._result.close_code = self._ws.close_code

    def _answered(self, now: float) -> bool:
        line = self._line
        played = line.last_end_at > self._said_at and line.idle()
        return played and now - line.last_end_at > self._quiet_s

    def _due(self, follow_up: FollowUp, now: float) -> bool:
        if follow_up.barge_in_after_s is None:
            return self._answered(now)
        began = self._line.first_media_since(self._began_at)
        return began is not None and now >= began + follow_up.barge_in_after_s

    async def _do(self, follow_up: FollowUp) -> None:
        self._began_at = time.perf_counter()
        if isinstance(follow_up.say, str):
            for digit in follow_up.say:
                await self._send("dtmf", dtmf={"track": "inbound_track", "digit": digit})
            self._said_at = time.perf_counter()
        else:
            self._audio.extend(phone_audio(follow_up.say))
            self._said_at = self._began_at + follow_up.say.last_voiced_s()

    async def run(self, token: str, clip: ClipAudio, then: list[FollowUp], hang_up: bool) -> None:
        result, line = self._result, self._line
        connected = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        await self._ws.send_str(json.dumps(connected))
        start = {
            "accountSid": self._account,
            "streamSid": result.stream_sid,
            "callSid": result.call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": MULAW_RATE, "channels": 1},
            "customParameters": {"token": token},
        }
        await self._send("start", start=start)
        started = self._began_at = time.perf_counter()
        speech_end_at = self._said_at = started + result.speech_end_s
        self._audio.extend(phone_audio(clip))
        receiver = asyncio.create_task(self._receive())
        speaker = asyncio.create_task(line.play())
        chunk = 0
        try:
            while not receiver.done():
                now = time.perf_counter()
                if then and not self._audio and self._due(then[0], now):
                    await self._do(then.pop(0))
                elif not then and not self._audio and self._answered(now):
                    break
                if (
                    not self._audio
                    and now - max(self._said_at, line.last_media_at) > self._listen_s
                ):
                    break
                # Frame k goes out once captured, at (k + 1) x 20 ms.
                delay = started + (chunk + 1) * FRAME_MS / 1000 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await self._media(chunk)
                chunk += 1
                while line.outbox:
                    echo = line.outbox.pop(0)
                    await self._send(str(echo.pop("event")), **echo)
        finally:
            _time_the_answer(result, speech_end_at)
            if hang_up and not self._ws.closed:
                with contextlib.suppress(ConnectionError):
                    stop = {"accountSid": self._account, "callSid": result.call_sid}
                    await self._send("stop", stop=stop)
                await self._ws.close()
            for task in (receiver, speaker):
                task.cancel()
            await asyncio.gather(receiver, speaker, return_exceptions=True)

    async def _media(self, chunk: int) -> None:
        audio = self._audio
        frame = bytes(audio[:FRAME_BYTES]).ljust(FRAME_BYTES, LINE_SILENCE[:1])
        del audio[:FRAME_BYTES]
        media = {
            "track": "inbound",
            "chunk": str(chunk + 1),
            "timestamp": str(chunk * FRAME_MS),
            "payload": base64.b64encode(frame).decode("ascii"),
        }
        await self._send("media", media=media)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Call the voice agent as Twilio would.")
    parser.add_argument("wav", type=Path, help="mono 16-bit PCM WAV with one spoken question")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="GATEWAY_PUBLIC_URL")
    parser.add_argument("--auth-token", required=True, help="TWILIO_AUTH_TOKEN")
    parser.add_argument("--digits", default="", help="DTMF keys to press after the question")
    args = parser.parse_args(argv)
    clip = ClipAudio.from_wav(args.wav)
    then = [FollowUp(args.digits)] if args.digits else []
    result = asyncio.run(call(args.url, args.auth_token, clip, then=then))
    seconds = len(result.heard) / 2 / MULAW_RATE
    print(f"call {result.call_sid}: heard {seconds:.2f} s of the agent")
    print(f"marks: {len(result.marks_sent())} sent, {len(result.marks_echoed)} echoed")
    latency = "none" if result.latency_ms is None else f"{result.latency_ms:.0f} ms"
    print(f"end of speech -> first audible agent audio: {latency}")
    for problem in result.invalid:
        print(f"protocol problem: {problem}", file=sys.stderr)
    return 0 if result.latency_ms is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
