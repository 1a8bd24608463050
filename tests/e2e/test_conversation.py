"""A spoken question travels client -> gateway -> stt -> llm -> tts -> client for real."""

from __future__ import annotations

import asyncio

import aiohttp
import grpc
import numpy as np
import pytest

from services.tts.piper import PiperEngine
from tests.conftest import Clip, clip_named
from tests.e2e.conftest import RunningCluster
from tools.client import ClipAudio, TurnResult, talk
from tools.wer import normalize_transcript as normalized
from tools.wer import word_error_rate
from voice.audio import Resampler, rms_dbfs
from voice.v1 import tts_pb2, tts_pb2_grpc

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def assert_spoken_answer(result: TurnResult) -> None:
    assert not result.errors, result.errors
    assert result.agent_text.strip(), "no agent text arrived"
    seconds = len(result.audio) / 2 / result.output_sample_rate
    assert seconds > 0.3, f"only {seconds:.2f} s of agent audio"
    assert rms_dbfs(bytes(result.audio)) > -40.0, "the agent audio is silent"
    assert result.latency_ms is not None
    assert set(result.waterfall) >= {
        "audio_received",
        "stt_complete",
        "llm_first_token",
        "first_audio_sent",
    }


async def test_real_question_gets_a_transcript_text_and_speech(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")
    result = await talk(cluster.url(), ClipAudio.from_wav(clip.path))
    assert normalized(result.transcript) == clip.transcript_normalized
    assert_spoken_answer(result)
    assert "=== Latency Summary (turn 1) ===" in cluster.output()
    assert "TOTAL LATENCY" in cluster.output()


async def test_speech_made_by_the_embedded_voice_round_trips(cluster: RunningCluster) -> None:
    """Runs without the shared corpus too: the question is spoken by the embedded Piper voice."""
    engine = await asyncio.to_thread(PiperEngine)
    pcm = b"".join(
        await asyncio.to_thread(lambda: list(engine.synthesize("What is the capital of France?")))
    )
    pcm16k = Resampler(engine.sample_rate, 16000).process(pcm, last=True)
    padded = b"\x00\x00" * 8000 + pcm16k
    result = await talk(cluster.url(), ClipAudio(padded, 16000))
    words = normalized(result.transcript).split()
    assert "capital" in words and "france" in words, result.transcript
    assert_spoken_answer(result)


# A sentence no answer to the weather question is: the agent's audio must be much nearer the
# PCM path's rendering of its own text than this one's.
CONTROL_SENTENCE = "The birch canoe slid on the smooth planks."


async def pcm_path_audio(cluster: RunningCluster, texts: list[str], rate: int) -> list[bytes]:
    """What the PCM path makes of each text: the cluster's own tts, asked directly, PCM16."""
    config = cluster.cluster.config
    requests = [
        tts_pb2.SynthesizeRequest(
            config=tts_pb2.SynthesizeConfig(session_id="opus-test-reference", sample_rate=rate)
        )
    ]
    for index, text in enumerate(texts):
        turn_id = f"reference-{index}"
        requests.append(
            tts_pb2.SynthesizeRequest(text=tts_pb2.TextInput(turn_id=turn_id, text=text))
        )
        requests.append(tts_pb2.SynthesizeRequest(flush=tts_pb2.FlushTurn(turn_id=turn_id)))
    audio = {f"reference-{index}": bytearray() for index in range(len(texts))}
    async with grpc.aio.insecure_channel(f"{config.host}:{config.tts_port}") as channel:
        stub = tts_pb2_grpc.TextToSpeechServiceStub(channel)
        async for response in stub.Synthesize(iter(requests)):
            if response.HasField("audio"):
                audio[response.audio.turn_id] += response.audio.audio.pcm
            elif response.HasField("end"):
                assert not response.end.error and not response.end.cancelled, response
    return [bytes(audio[f"reference-{index}"]) for index in range(len(texts))]


def voiced_log_mel(pcm: bytes, rate: int) -> np.ndarray:
    """Log-mel frames (25 ms every 10 ms, 40 bands, 60 Hz-7.6 kHz) of the voiced part only
    (within 35 dB of the loudest frame, so pauses between chunks do not count), mean removed."""
    samples = np.frombuffer(pcm, "<i2").astype(np.float64) / 32768
    window, hop, size = int(0.025 * rate), int(0.010 * rate), 1024
    frames = np.lib.stride_tricks.sliding_window_view(samples, window)[::hop] * np.hanning(window)
    power = np.abs(np.fft.rfft(frames, size)) ** 2
    low, high = 2595 * np.log10(1 + np.array([60.0, 7600.0]) / 700)
    mel = np.linspace(low, high, 42)
    edges = 700 * (10 ** (mel / 2595) - 1)
    freqs = np.fft.rfftfreq(size, 1 / rate)
    bank = np.array(
        [
            np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0, None)
            for lo, mid, hi in zip(edges, edges[1:], edges[2:], strict=False)
        ]
    )
    energy = 10 * np.log10(np.sum(frames**2, axis=1) + 1e-12)
    features = np.log(power @ bank.T + 1e-10)[energy > energy.max() - 35]
    result: np.ndarray = features - features.mean(axis=0)
    return result


def aligned_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean frame distance along the best monotonic alignment (DTW) of two utterances."""
    cost = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))
    total = np.full((len(a) + 1, len(b) + 1), np.inf)
    total[0, 0] = 0.0
    for i in range(1, len(a) + 1):
        above = np.minimum(total[i - 1, :-1], total[i - 1, 1:])  # diagonal or vertical step
        row = total[i]
        for j in range(1, len(b) + 1):
            row[j] = cost[i - 1, j - 1] + min(above[j - 1], row[j - 1])
    return float(total[-1, -1] / (len(a) + len(b)))


async def test_an_opus_client_is_understood_and_answered_in_opus(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    """Opus both ways, intact, and the turn works.

    Up: the stt's transcript of the user's Opus speech is the reference (at most one word of
    the four off). Down: the agent's Opus audio, decoded, is the agent's own text as the PCM
    path speaks it (the cluster's tts asked directly, same voice and rate): acoustically aligned
    it is far nearer that than another sentence, and as long. No speech recogniser judges the
    agent's voice: tiny.en mishears Piper's "a mild breeze" whatever the codec, and a word
    error rate over six words moves in steps of 0.17.
    """
    clip = clip_named(speech_clips, "036_")
    result = await talk(cluster.url(), ClipAudio.from_wav(clip.path), start={"codec": "opus"})
    assert word_error_rate(clip.transcript_normalized, result.transcript) <= 0.25, result.transcript
    assert_spoken_answer(result)
    ready = [e for e in result.events if e["type"] == "ready"][-1]
    assert ready["codec"] == "opus" and ready["sample_rate"] == 48000
    # About a tenth of PCM16's bytes, both ways.
    assert result.wire_bytes_sent < result.audio_seconds_sent * 16000 * 2 / 5
    assert result.wire_bytes_received < len(result.audio) / 5
    rate = result.output_sample_rate
    own, control = await pcm_path_audio(cluster, [result.agent_text, CONTROL_SENTENCE], rate)
    heard = voiced_log_mel(bytes(result.audio), rate)
    expected = voiced_log_mel(own, rate)
    same = aligned_distance(heard, expected)
    other = aligned_distance(heard, voiced_log_mel(control, rate))
    # Measured on this cluster: about 2 against the own text's PCM (3 with the tts phrase cache
    # off, TTS_CACHE_MB=0: Piper differs a little from run to run), 9-10 against the control
    # sentence. Taking 48 kHz audio for 24 kHz or the reverse gives about 10 and twice or half
    # the length; losing every other packet, half the length.
    assert same < 0.5 * other, (result.agent_text, same, other)
    assert 0.8 < len(heard) / len(expected) < 1.25, (len(heard), len(expected))


async def test_two_sessions_at_once_are_both_answered(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    clips = [clip_named(speech_clips, "036_"), clip_named(speech_clips, "006_")]
    results = await asyncio.gather(
        *(talk(cluster.url(), ClipAudio.from_wav(c.path)) for c in clips)
    )
    for clip, result in zip(clips, results, strict=True):
        assert normalized(result.transcript) == clip.transcript_normalized
        assert_spoken_answer(result)


async def test_a_wrong_token_is_refused_before_the_upgrade(cluster: RunningCluster) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
            await http.ws_connect(cluster.url("not-a-token"))
    assert raised.value.status == 401


async def test_silence_gets_no_turn(cluster: RunningCluster) -> None:
    silence = ClipAudio(np.zeros(16000 * 2, dtype="<i2").tobytes(), 16000)
    result = await talk(cluster.url(), silence, answer_timeout_s=2.0)
    assert result.transcript == "" and result.agent_text == "" and not result.audio


async def test_every_process_serves_prometheus_metrics(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    await talk(cluster.url(), ClipAudio.from_wav(clip_named(speech_clips, "036_").path))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{cluster.cluster.http_url}/metrics") as response:
            gateway = await response.text()
        stages = {}
        for name, port in cluster.cluster.config.metrics_ports.items():
            async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                stages[name] = await response.text()
    assert "voice_gateway_turn_latency_seconds_count" in gateway
    count = next(
        float(line.split()[-1])
        for line in gateway.splitlines()
        if line.startswith("voice_gateway_turn_latency_seconds_count")
    )
    assert count >= 1
    assert 'voice_gateway_turns_total{outcome="complete"}' in gateway
    for name, text in stages.items():
        assert f"voice_{name}_active_streams" in text
        assert "process_resident_memory_bytes" in text
