"""Phone calls against the real cluster: a caller speaking Twilio's media-stream protocol.

The cluster here has phone calls on (TWILIO_AUTH_TOKEN, GATEWAY_PUBLIC_URL) and its gateway
logs at DEBUG, where the phone transport writes what the caller said (Twilio's protocol has no
place for transcripts). Real speech, converted to 8 kHz mu-law as a phone line carries it.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import pytest_asyncio

from gateway.phone import STREAM_PATH, VOICE_PATH
from launcher.cluster import Cluster, ClusterConfig
from tests.conftest import Clip, clip_named
from tools.client import ClipAudio
from tools.phone import CallResult, FollowUp, answer, call, caller_transcripts
from tools.wer import word_error_rate
from voice.audio import rms_dbfs

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

AUTH_TOKEN = "phone-test-auth-token"


class PhoneCluster:
    def __init__(self, cluster: Cluster, log_path: Path) -> None:
        self.cluster = cluster
        self.url = cluster.http_url  # what GATEWAY_PUBLIC_URL says
        self.log_path = log_path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def caller_said(self, result: CallResult) -> list[str]:
        return caller_transcripts(self.output(), result.call_sid)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def phone(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PhoneCluster]:
    log_path = tmp_path_factory.mktemp("phone") / "cluster.log"
    with log_path.open("w") as log:
        config = ClusterConfig.on_free_ports(output=log, env={"OTEL_SDK_DISABLED": "true"})
        gateway_env = {
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "GATEWAY_PUBLIC_URL": f"http://{config.host}:{config.gateway_port}",
            "LOG_LEVEL": "DEBUG",
        }
        config.env_for = {"gateway": gateway_env}
        async with Cluster(config) as running:
            yield PhoneCluster(running, log_path)


def heard_seconds(result: CallResult) -> float:
    return len(result.heard) / 2 / 8000


def assert_answered(result: CallResult) -> None:
    assert not result.invalid, result.invalid
    assert result.latency_ms is not None, "no audible answer"
    assert heard_seconds(result) > 0.3
    assert rms_dbfs(bytes(result.heard)) > -40.0, "the answer is silent"
    marks = result.marks_sent()
    assert marks, "no marks after the agent's audio"
    # Every mark came back (played, or dropped by a clear) and nothing else did.
    assert sorted(result.marks_echoed) == sorted(marks)


async def test_a_call_is_answered_in_mu_law_with_marks(
    phone: PhoneCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")
    result = await call(phone.url, AUTH_TOKEN, ClipAudio.from_wav(clip.path))
    assert_answered(result)
    said = phone.caller_said(result)
    assert said, "no transcript for the call"
    # tiny.en on telephone audio: within a word of the four (the bench gives the WER).
    assert word_error_rate(clip.transcript_normalized, " ".join(said)) <= 0.25, said
    media = [item for item in result.received if item.kind == "media"]
    assert all(item.samples == 160 for item in media[:-1])  # 20 ms frames
    assert result.received[-1].kind == "mark"  # a mark after the last audio
    # The caller hung up (stop): the gateway closed that session.
    await asyncio.sleep(0.5)
    assert f"stream {result.stream_sid} started for call {result.call_sid}" in phone.output()


async def test_talking_over_the_agent_clears_what_the_phone_still_had(
    phone: PhoneCluster, speech_clips: list[Clip]
) -> None:
    question = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    interruption = ClipAudio.from_wav(clip_named(speech_clips, "006_").path)
    result = await call(
        phone.url, AUTH_TOKEN, question, then=[FollowUp(interruption, barge_in_after_s=0.5)]
    )
    assert result.clears, "no clear after the barge-in"
    cleared_at = result.clears[0]
    before = [item.name for item in result.received if item.kind == "mark" and item.at < cleared_at]
    after = [item.name for item in result.received if item.kind == "mark" and item.at > cleared_at]
    assert before, "no audio before the barge-in"
    first_reply = before[-1].split(".")[0]
    # Nothing of the interrupted reply came after the clear; the next answer did.
    assert after and all(name.split(".")[0] != first_reply for name in after), (before, after)
    assert len(phone.caller_said(result)) >= 2
    assert_answered(result)


async def test_keys_pressed_reach_the_agent_as_a_turn(
    phone: PhoneCluster, speech_clips: list[Clip]
) -> None:
    clip = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    result = await call(phone.url, AUTH_TOKEN, clip, then=[FollowUp("42#")])
    said = phone.caller_said(result)
    assert "[pressed 4 2 #]" in said, said
    replies = {name.split(".")[0] for name in result.marks_sent()}
    assert len(replies) >= 2, "the keys got no answer"
    assert_answered(result)


async def test_a_bad_signature_or_token_is_refused(phone: PhoneCluster) -> None:
    async with aiohttp.ClientSession() as http:
        status, body = await answer(http, phone.url, "not-the-auth-token", "CA" + "1" * 32)
        assert status == 403, body
        status, twiml = await answer(http, phone.url, AUTH_TOKEN, "CA" + "1" * 32)
        assert status == 200 and "<Connect><Stream" in twiml
        async with http.post(phone.url + VOICE_PATH, data={"CallSid": "CA1"}) as response:
            assert response.status == 403  # no signature at all
        # A stream whose start carries no valid token for its call is closed (1008).
        ws_url = phone.url.replace("http://", "ws://") + STREAM_PATH
        async with http.ws_connect(ws_url) as ws:
            start = {
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": "MZ1",
                "start": {
                    "streamSid": "MZ1",
                    "callSid": "CA2",
                    "accountSid": "AC1",
                    "tracks": ["inbound"],
                    "customParameters": {"token": "v1.forged.token"},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            }
            await ws.send_str(json.dumps(start))
            message = await ws.receive(timeout=10)
            assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1008
    output = phone.output()
    assert "refused a /twilio/voice request whose Twilio signature does not verify" in output
    assert "not-the-auth-token" not in output and "v1.forged.token" not in output


async def test_malformed_messages_harm_no_other_call(
    phone: PhoneCluster, speech_clips: list[Clip]
) -> None:
    """One stream sends garbage between good messages; a call beside it is answered."""
    clip = ClipAudio.from_wav(clip_named(speech_clips, "006_").path)

    async def garbage() -> int:
        async with aiohttp.ClientSession() as http:
            _, twiml = await answer(http, phone.url, AUTH_TOKEN, "CA" + "9" * 32)
            token = re.search(r'name="token" value="([^"]+)"', twiml)
            assert token is not None
            ws_url = phone.url.replace("http://", "ws://") + STREAM_PATH
            async with http.ws_connect(ws_url) as ws:
                start = {
                    "streamSid": "MZ9",
                    "callSid": "CA" + "9" * 32,
                    "accountSid": "AC1",
                    "tracks": ["inbound"],
                    "customParameters": {"token": token.group(1)},
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                }
                await ws.send_str(json.dumps({"event": "start", "start": start}))
                bad = [
                    "{not json",
                    '{"event": "media", "media": {"payload": "***"}}',
                    '{"event": "dtmf", "dtmf": {"digit": "Z"}}',
                    '{"event": "nonsense"}',
                    json.dumps({"event": "media", "media": {"payload": "A" * 100000}}),
                ]
                for _ in range(20):
                    for raw in bad:
                        await ws.send_str(raw)
                    await ws.send_bytes(np.zeros(160, "u1").tobytes())
                    await asyncio.sleep(0.05)
                alive = not ws.closed
                await ws.close()
                return int(alive)

    good, alive = await asyncio.gather(call(phone.url, AUTH_TOKEN, clip), garbage())
    assert alive == 1, "the stream with bad messages was closed"
    assert_answered(good)
    assert phone.caller_said(good)
    assert "dropped a message: invalid_json" in phone.output()
