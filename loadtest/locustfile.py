"""Locust users that each hold a real voice session: real speech in, the agent's answer out.

Run by ``make load`` / ``make soak`` (loadtest/run.py), which start the cluster and pass
VOICE_URL (ws://host:port/ws/TOKEN) and VOICE_CORPUS. Each task streams one clip in real time
(frame k at (k + 1) x 20 ms), then silence until the answer to that clip is audible, and reports
the clip's acoustic end of speech -> first audible audio of its own answer as the request time
of "first audible answer". A turn that fails is a "failed turn", never a latency sample; a
session the gateway refuses at the upgrade (HTTP 503, admission control) is a "refused session".
With VOICE_RECORDS set, each request is also appended there as a JSON line (name, latency_ms,
held_s) for loadtest/report.py.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import gevent
import websocket
from locust import User, between, events, task

from bench.corpus import BenchClip, load_corpus
from tools.acoustics import PlaybackClock
from voice.settings import Env

FRAME_MS = 20
ANSWER_TIMEOUT_S = 20.0
# Locust request names: answered turns (their latency) and failed ones (counted apart).
ANSWERED = "first audible answer"
FAILED = "failed turn"
# A session the gateway turned away at the upgrade (HTTP 503 with Retry-After): not an error.
REFUSED = "refused session"
CLIPS: list[BenchClip] = []


@events.init.add_listener  # type: ignore[untyped-decorator]
def _load_clips(**_kwargs: object) -> None:
    corpus = Path(Env().text("../shared/speech", "VOICE_CORPUS"))
    # Short questions, the kind a voice agent gets; long clips would only slow the cycle.
    CLIPS.extend(
        c for c in load_corpus(corpus) if c.is_speech and c.speech_end_s and c.speech_end_s < 6
    )


class VoiceUser(User):
    wait_time = between(0.5, 1.5)

    @task
    def one_turn(self) -> None:
        clip = random.choice(CLIPS)
        url = Env().text("", "VOICE_URL")
        started = time.perf_counter()
        try:
            latency_ms = self._talk(url, clip)
        except websocket.WebSocketBadStatusException as error:
            if error.status_code == 503:
                self._report(REFUSED, started, (time.perf_counter() - started) * 1000, None)
            else:
                self._report(FAILED, started, (time.perf_counter() - started) * 1000, error)
            return
        except Exception as error:  # every failure is a result of the load test
            # Failed turns are counted under their own name, so they never enter the latency
            # percentiles of the answered ones.
            self._report(FAILED, started, (time.perf_counter() - started) * 1000, error)
            return
        self._report(ANSWERED, started, latency_ms, None)

    def _talk(self, url: str, clip: BenchClip) -> float:
        """One clip in real time, then silence until this turn's answer is audible (ms)."""
        ws = websocket.create_connection(url, timeout=ANSWER_TIMEOUT_S)
        errors: list[str] = []
        rate = clip.audio.sample_rate
        begin = time.perf_counter()
        speech_end = begin + (clip.speech_end_s or 0.0)
        turn = _AnswerTurn(speech_end)

        def read() -> None:
            while turn.audible_at is None:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    turn.on_audio(data, time.perf_counter())
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    return
                elif opcode == websocket.ABNF.OPCODE_TEXT:
                    message = json.loads(data)
                    if message.get("type") == "error":
                        errors.append(message.get("code", "?"))
                    turn.on_event(message, time.perf_counter())

        reader = gevent.spawn(read)
        try:
            ws.send(json.dumps({"type": "start", "sample_rate": rate}))
            begin = time.perf_counter()
            speech_end = begin + (clip.speech_end_s or 0.0)
            turn.speech_end_at = speech_end
            frame = rate * FRAME_MS // 1000 * 2
            pcm = clip.audio.pcm
            index = 0
            while turn.audible_at is None and not reader.dead:
                # Frame k is handed over at (k + 1) x 20 ms, as a microphone captures it.
                gevent.sleep(max(0.0, begin + (index + 1) * FRAME_MS / 1000 - time.perf_counter()))
                offset = index * frame
                chunk = pcm[offset : offset + frame] if offset < len(pcm) else b""
                ws.send_binary(chunk.ljust(frame, b"\x00"))
                index += 1
                if time.perf_counter() - speech_end > ANSWER_TIMEOUT_S:
                    raise TimeoutError("no audible answer within 20 s of the end of speech")
            if turn.audible_at is None:
                detail = f"; server errors: {errors}" if errors else ""
                raise RuntimeError(f"the connection closed before an audible answer{detail}")
            return (turn.audible_at - speech_end) * 1000
        finally:
            reader.kill()
            ws.close()

    def _report(
        self, name: str, started: float, response_ms: float, error: Exception | None
    ) -> None:
        _record(name, response_ms, time.perf_counter() - started)
        self.environment.events.request.fire(
            request_type="WS",
            name=name,
            response_time=response_ms,
            response_length=0,
            exception=error,
            context={},
            start_time=started,
        )


def _record(name: str, latency_ms: float, held_s: float) -> None:
    """One line per request in VOICE_RECORDS (JSON lines), for loadtest/report.py."""
    path = os.environ.get("VOICE_RECORDS")
    if path:
        line = json.dumps({"name": name, "latency_ms": latency_ms, "held_s": round(held_s, 3)})
        with open(path, "a") as records:
            records.write(line + "\n")


class _AnswerTurn:
    """Finds the answer to this clip: the turn whose final transcript came after the speech,
    and the moment its audio, played as it arrives, is first audible (tools/acoustics.py)."""

    def __init__(self, speech_end_at: float) -> None:
        self.speech_end_at = speech_end_at
        self.answer_turn: str | None = None
        self.audio_turn: str | None = None
        self.output_rate = 24000
        self._clock: PlaybackClock | None = None
        self.audible_at: float | None = None

    def on_event(self, message: dict[str, object], now: float) -> None:
        kind = message.get("type")
        if kind == "ready":
            self.output_rate = int(str(message.get("output_sample_rate", self.output_rate)))
        elif kind == "transcript" and message.get("final") and now >= self.speech_end_at:
            if str(message.get("text", "")).strip():
                self.answer_turn = str(message.get("turn_id"))
        elif kind == "audio_start":
            self.audio_turn = str(message.get("turn_id"))

    def on_audio(self, data: bytes, now: float) -> None:
        if self.answer_turn is None or self.audio_turn != self.answer_turn:
            return
        if self._clock is None:
            self._clock = PlaybackClock(self.output_rate)
        self._clock.feed(data, now)
        self.audible_at = self._clock.first_audible_at
