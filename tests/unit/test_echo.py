"""The echo canceller (gateway/echo.py): its model of the client's playback, the transport it
sees through, and WebRTC's AEC3 on real speech played back into the microphone."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import soxr

from gateway.echo import EchoCanceller, EchoTransport, PlayoutModel
from gateway.transports.base import ClientAudio, StartRequest
from gateway.turns.actions import ClientOutput, CloseAudio, OpenAudio, SendAudio, SendEvent
from tests.conftest import Clip, clip_named
from tools.client import ClipAudio

RATE = 16000
AGENT_RATE = 24000
FRAME = RATE // 50  # the client's 20 ms frames


def pcm(samples: np.ndarray) -> bytes:
    return bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


# --------------------------------------------------------------------------- the playout model


def test_chunks_play_back_to_back_from_when_they_were_sent() -> None:
    model = PlayoutModel(RATE, origin=10.0)
    model.open(RATE)
    model.push(pcm(np.full(1600, 1000)), sent_at=10.5)  # plays 0.5-0.6 s
    model.push(pcm(np.full(1600, 2000)), sent_at=10.52)  # after the first: 0.6-0.7 s
    model.push(pcm(np.full(800, 3000)), sent_at=11.0)  # sent after the rest ended: 1.0-1.05 s
    far = model.take(0, RATE + 1600)
    assert not far[:8000].any()
    assert (far[8000:9600] == 1000).all() and (far[9600:11200] == 2000).all()
    assert not far[11200:16000].any()
    assert (far[16000:16800] == 3000).all() and not far[16800:].any()


def test_interrupted_drops_what_had_not_played() -> None:
    model = PlayoutModel(RATE, origin=0.0)
    model.open(RATE)
    model.push(pcm(np.full(RATE, 1000)), sent_at=0.0)  # one second of audio
    model.flush(at=0.25)
    far = model.take(0, RATE)
    assert (far[:4000] == 1000).all() and not far[4000:].any()


def test_ducked_scales_what_has_not_played_and_resumed_restores_it() -> None:
    model = PlayoutModel(RATE, origin=0.0)
    model.open(RATE)
    model.push(pcm(np.full(RATE, 1000)), sent_at=0.0)
    model.set_gain(0.0, at=0.25)
    model.set_gain(1.0, at=0.5)
    far = model.take(0, RATE)
    assert (far[:4000] == 1000).all() and not far[4000:8000].any() and (far[8000:] == 1000).all()


def test_played_reports_move_the_rest_of_the_turn() -> None:
    model = PlayoutModel(RATE, origin=0.0)
    model.open(RATE)
    model.turn_id = "t1"
    model.push(pcm(np.full(RATE, 1000)), sent_at=0.0)
    # The client started late: by 0.5 s it had played 100 ms, so the rest plays 0.4 s later.
    model.played("t1", 100.0, at=0.5)
    far = model.take(0, 2 * RATE)
    start = int(0.5 * RATE)
    assert not far[1600:start].any()  # nothing plays from 0.1 s until the client's 0.5 s
    assert (far[start : start + RATE - 1600] == 1000).all()


def test_resampled_agent_audio_keeps_its_length() -> None:
    model = PlayoutModel(RATE, origin=0.0)
    model.open(AGENT_RATE)
    tone = 8000 * np.sin(2 * np.pi * 440 * np.arange(AGENT_RATE) / AGENT_RATE)
    for offset in range(0, AGENT_RATE, 2400):
        model.push(pcm(tone[offset : offset + 2400]), sent_at=0.0)
    model.close(sent_at=0.0)
    far = model.take(0, 2 * RATE)
    voiced = np.flatnonzero(np.abs(far) > 100)
    assert abs(voiced[-1] - RATE) < 100 and voiced[0] < 100


def test_the_setting_is_off_by_default_and_takes_on_or_off() -> None:
    from gateway.settings import GatewaySettings
    from voice.errors import SettingsError

    base = {"GATEWAY_TOKENS": "t"}
    assert not GatewaySettings.from_env(base).echo_cancel
    assert GatewaySettings.from_env({**base, "GATEWAY_ECHO_CANCEL": "on"}).echo_cancel
    assert not GatewaySettings.from_env({**base, "GATEWAY_ECHO_CANCEL": "off"}).echo_cancel
    with pytest.raises(SettingsError, match="GATEWAY_ECHO_CANCEL"):
        GatewaySettings.from_env({**base, "GATEWAY_ECHO_CANCEL": "maybe"})


# --------------------------------------------------------------------------- the transport


@dataclass(frozen=True)
class ClientPlayed:
    turn_id: str
    ms: int
    at: float


class FakeTransport:
    def __init__(self, items: list[Any]) -> None:
        self.input_rate, self.output_rate, self.codec = RATE, AGENT_RATE, "pcm16"
        self.sent: list[ClientOutput] = []
        self.events: list[str] = []
        self._items = items

    async def receive(self) -> Any:
        return self._items.pop(0) if self._items else None

    def configure(self, request: StartRequest) -> None:
        self.input_rate = request.sample_rate or self.input_rate

    async def send(self, output: ClientOutput) -> None:
        self.sent.append(output)

    async def send_event(self, kind: str, **fields: Any) -> None:
        self.events.append(kind)

    def heard_text(self, estimate: str) -> str:
        return "heard: " + estimate

    async def hang_up(self, *, at: float, reason: str) -> None: ...

    async def close(self, *, code: int, reason: str) -> None: ...


def test_the_transport_passes_everything_on_and_notes_the_far_end() -> None:
    async def scenario() -> tuple[FakeTransport, EchoTransport, np.ndarray]:
        now = [0.0]
        inner = FakeTransport([ClientPlayed("t1", 0, 0.0), ClientAudio(b"\0" * 640, 0.02)])
        echo = EchoTransport(inner, lambda: now[0])
        outputs: list[ClientOutput] = [
            OpenAudio(RATE),
            SendEvent("audio_start", {"turn_id": "t1"}),
            SendAudio(pcm(np.full(RATE, 1000))),
            CloseAudio(),
        ]
        for output in outputs:
            await echo.send(output)
        now[0] = 0.5
        await echo.send(SendEvent("interrupted", {"turn_id": "t1"}))
        assert isinstance(await echo.receive(), ClientPlayed)
        assert isinstance(await echo.receive(), ClientAudio)
        await echo.send_event("error", code="x")
        echo.canceller.process(b"", 0.0)  # applies the updates
        return inner, echo, echo.canceller.playout.take(0, RATE)

    inner, echo, far = asyncio.run(scenario())
    assert len(inner.sent) == 5 and inner.events == ["error"]
    assert echo.heard_text("hi") == "heard: hi" and echo.input_rate == RATE
    assert (far[:8000] == 1000).all() and not far[8000:].any()


def test_a_new_microphone_rate_gets_a_new_canceller_and_odd_rates_pass_through() -> None:
    echo = EchoTransport(FakeTransport([]), lambda: 0.0)
    echo.configure(StartRequest(sample_rate=22050))
    assert echo.canceller.rate == 22050 and not echo.canceller.active
    assert echo.canceller.process(b"\1\0" * 441, 0.02) == b"\1\0" * 441
    echo.configure(StartRequest(sample_rate=48000))
    assert echo.canceller.rate == 48000 and echo.canceller.active


def test_cleaned_frames_reach_stt_in_order() -> None:
    async def scenario() -> list[float]:
        echo = EchoTransport(FakeTransport([]), lambda: 0.0)
        delivered: list[float] = []
        all_in = asyncio.Event()

        def deliver(_pcm: bytes, at: float) -> None:
            delivered.append(at)
            if len(delivered) == 20:
                all_in.set()

        for k in range(20):
            frame = pcm(np.random.default_rng(k).normal(0, 2000, FRAME))
            echo.clean(ClientAudio(frame, (k + 1) * 0.02), deliver)
        await asyncio.wait_for(all_in.wait(), 30.0)
        await echo.stop()
        return delivered

    assert asyncio.run(scenario()) == [(k + 1) * 0.02 for k in range(20)]


# --------------------------------------------------------------------------- real speech


def read(clip: Clip, rate: int) -> np.ndarray:
    audio = ClipAudio.from_wav(clip.path)
    samples = np.frombuffer(audio.pcm, "<i2").astype(np.float32)
    resampled: np.ndarray = soxr.resample(samples, audio.sample_rate, rate)
    return resampled.astype(np.float32)


@dataclass
class EchoRun:
    mic: np.ndarray  # what the microphone heard (16 kHz)
    cleaned: np.ndarray
    echo_only: np.ndarray  # sample indices where only the agent's echo was heard
    user_span: slice


def run_echo(
    agent: np.ndarray,
    user: np.ndarray | None,
    attenuation_db: float,
    delay_ms: float,
    *,
    cancel: bool = True,
) -> EchoRun:
    """The agent's audio (24 kHz) sent at once in 100 ms chunks and played from 0 s; the
    microphone hears it back ``attenuation_db`` lower and ``delay_ms`` later (plus the user's
    clip from the middle on), in 20 ms frames handed over at (k + 1) x 20 ms."""
    played = soxr.resample(agent, AGENT_RATE, RATE).astype(np.float32)
    delay = int(delay_ms * RATE / 1000)
    mic = np.zeros(len(played) + delay + RATE, dtype=np.float32)
    mic[delay : delay + len(played)] = played * 10 ** (-attenuation_db / 20)
    user_at = len(played) // 2
    span = slice(user_at, user_at + (0 if user is None else len(user)))
    if user is not None:
        mic = np.concatenate((mic, np.zeros(max(0, span.stop - len(mic)), np.float32)))
        mic[span] += user
    canceller = EchoCanceller(RATE, origin=0.0)
    canceller.update(lambda p: p.open(AGENT_RATE))
    for offset in range(0, len(agent), AGENT_RATE // 10):
        chunk = pcm(agent[offset : offset + AGENT_RATE // 10])
        canceller.update(lambda p, c=chunk: p.push(c, 0.0))  # type: ignore[misc]
    canceller.update(lambda p: p.close(0.0))
    out = []
    for k in range(len(mic) // FRAME):
        frame = pcm(mic[k * FRAME : (k + 1) * FRAME])
        out.append(frame if not cancel else canceller.process(frame, (k + 1) * FRAME / RATE))
    cleaned = np.frombuffer(b"".join(out), "<i2").astype(np.float32)
    mic = mic[: len(cleaned)]
    # Echo only: after the canceller's first 2 s, outside the user's clip, while the agent plays.
    echo_only = np.r_[2 * RATE : span.start, span.stop : delay + len(played)]
    return EchoRun(mic, cleaned, echo_only[echo_only < len(cleaned)], span)


def energy_db(samples: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(samples.astype(np.float64) ** 2) + 1e-9))


def agent_voice(speech_clips: list[Clip]) -> np.ndarray:
    return np.concatenate(
        [read(clip_named(speech_clips, p), AGENT_RATE) for p in ("002_", "014_", "005_")]
    )


@pytest.mark.parametrize(("attenuation_db", "delay_ms"), [(6, 30), (12, 100), (20, 200)])
def test_the_agents_echo_is_taken_out_and_the_users_speech_kept(
    speech_clips: list[Clip], attenuation_db: float, delay_ms: float
) -> None:
    agent = agent_voice(speech_clips)
    user = read(clip_named(speech_clips, "006_"), RATE)
    run = run_echo(agent, user, attenuation_db, delay_ms)
    erle = energy_db(run.mic[run.echo_only]) - energy_db(run.cleaned[run.echo_only])
    print(f"ERLE {erle:.1f} dB at -{attenuation_db} dB, {delay_ms} ms")
    assert erle > 25.0
    # Over the user's clip, what is left is mostly the user: within 8 dB of the clip itself.
    kept = energy_db(run.cleaned[run.user_span]) - energy_db(user)
    assert -8.0 < kept < 3.0


def test_without_the_agent_speaking_the_microphone_passes_nearly_untouched(
    speech_clips: list[Clip],
) -> None:
    user = read(clip_named(speech_clips, "006_"), RATE)
    canceller = EchoCanceller(RATE, origin=0.0)
    frames = [pcm(user[k * FRAME : (k + 1) * FRAME]) for k in range(len(user) // FRAME)]
    out = b"".join(canceller.process(f, (k + 1) * FRAME / RATE) for k, f in enumerate(frames))
    cleaned = np.frombuffer(out, "<i2").astype(np.float32)
    assert abs(energy_db(cleaned) - energy_db(user[: len(cleaned)])) < 1.0
