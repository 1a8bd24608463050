"""Locust users that each hold a real voice session: real speech in, the agent's answer out.

Run by ``make load`` / ``make soak`` (loadtest/run.py), which start the cluster and pass
VOICE_URL (ws://host:port/ws/TOKEN) and VOICE_CORPUS. Each task streams one clip in real time,
then silence until the agent's first audio, and reports end of speech -> first agent audio as
the request time of "first agent audio".
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import gevent
import websocket
from locust import User, between, events, task

from bench.corpus import BenchClip, load_corpus
from voice.settings import Env

FRAME_MS = 20
ANSWER_TIMEOUT_S = 20.0
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
        except Exception as error:  # every failure is a result of the load test
            self._report(started, 0.0, error)
            return
        self._report(started, latency_ms, None)

    def _talk(self, url: str, clip: BenchClip) -> float:
        ws = websocket.create_connection(url, timeout=ANSWER_TIMEOUT_S)
        first_audio: list[float] = []
        errors: list[str] = []

        def read() -> None:
            while True:
                opcode, data = ws.recv_data()
                if opcode == websocket.ABNF.OPCODE_BINARY:
                    first_audio.append(time.perf_counter())
                    return
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    return
                message = json.loads(data)
                if message.get("type") == "error":
                    errors.append(message.get("code", "?"))

        reader = gevent.spawn(read)
        try:
            ws.send(json.dumps({"type": "start", "sample_rate": clip.audio.sample_rate}))
            frame = clip.audio.sample_rate * FRAME_MS // 1000 * 2
            begin = time.perf_counter()
            speech_end = begin + (clip.speech_end_s or 0.0)
            pcm = clip.audio.pcm
            sent = 0
            while not first_audio and not reader.dead:
                chunk = pcm[sent : sent + frame] if sent < len(pcm) else b""
                ws.send_binary(chunk.ljust(frame, b"\x00"))
                sent += frame
                if time.perf_counter() - speech_end > ANSWER_TIMEOUT_S:
                    raise TimeoutError("no agent audio within 20 s of the end of speech")
                gevent.sleep(
                    max(0.0, begin + sent / (2 * clip.audio.sample_rate) - time.perf_counter())
                )
            if errors:
                raise RuntimeError(f"server errors: {errors}")
            if not first_audio:
                raise RuntimeError("the connection closed before any agent audio")
            return (first_audio[0] - speech_end) * 1000
        finally:
            reader.kill()
            ws.close()

    def _report(self, started: float, latency_ms: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="WS",
            name="first agent audio",
            response_time=latency_ms,
            response_length=0,
            exception=error,
            context={},
            start_time=started,
        )
