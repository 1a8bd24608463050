"""A spoken question travels client -> gateway -> stt -> llm -> tts -> client for real."""

from __future__ import annotations

import asyncio

import aiohttp
import numpy as np
import pytest

from services.tts.piper import PiperEngine
from tests.conftest import Clip, clip_named
from tests.e2e.conftest import RunningCluster
from voice.audio import Resampler, rms_dbfs
from voice.client import ClipAudio, TurnResult, talk
from voice.wer import normalize_transcript as normalized
from voice.wer import word_error_rate

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


async def test_an_opus_client_is_understood_and_answered_in_opus(
    cluster: RunningCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")
    result = await talk(cluster.url(), ClipAudio.from_wav(clip.path), start={"codec": "opus"})
    assert normalized(result.transcript) == clip.transcript_normalized
    assert_spoken_answer(result)
    ready = [e for e in result.events if e["type"] == "ready"][-1]
    assert ready["codec"] == "opus" and ready["sample_rate"] == 48000
    # About a tenth of PCM16's bytes, both ways.
    assert result.wire_bytes_sent < result.audio_seconds_sent * 16000 * 2 / 5
    assert result.wire_bytes_received < len(result.audio) / 5
    # The decoded agent audio is still speech stt understands: say it back as PCM16.
    reply = Resampler(result.output_sample_rate, 16000).process(bytes(result.audio), last=True)
    echo = await talk(cluster.url(), ClipAudio(b"\x00\x00" * 8000 + reply, 16000))
    assert word_error_rate(result.agent_text, echo.transcript) < 0.5, (
        result.agent_text,
        echo.transcript,
    )


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
