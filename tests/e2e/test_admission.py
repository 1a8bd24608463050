"""Admission for real: the four processes, a gateway whose latency budget one session fills.

A second session is refused with HTTP 503 and Retry-After before the WebSocket upgrade (a real
aiohttp client), while the first session's turn is still answered; the stages report their
load over gRPC and as Prometheus gauges.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from launcher.cluster import Cluster, ClusterConfig
from tests.conftest import Clip, clip_named
from tools.client import ClipAudio
from tools.live import LiveSession

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def tight(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Cluster, Path]]:
    """A cluster whose gateway admits one session only: its budget is under any prediction."""
    log_path = tmp_path_factory.mktemp("admission") / "cluster.log"
    with log_path.open("w") as log:
        config = ClusterConfig.on_free_ports(output=log, env={"OTEL_SDK_DISABLED": "true"})
        config.env_for = {
            "gateway": {
                "GATEWAY_ADMISSION": "refuse",
                "GATEWAY_LATENCY_BUDGET_MS": "50",
                "GATEWAY_RETRY_AFTER_S": "3",
            }
        }
        async with Cluster(config) as running:
            yield running, log_path


async def test_a_second_session_is_refused_before_the_upgrade_and_the_first_is_answered(
    tight: tuple[Cluster, Path], speech_clips: list[Clip]
) -> None:
    cluster, log_path = tight
    url = f"{cluster.ws_url}/ws/{cluster.token()}"
    async with aiohttp.ClientSession() as http, LiveSession(http, url, start={}) as first:
        await first.wait_for(lambda: "ready" in first.types(), 15.0)

        # A plain HTTP request asking for the upgrade: 503, Retry-After, a JSON reason.
        http_url = url.replace("ws://", "http://", 1)
        async with http.get(http_url, headers=UPGRADE) as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "3"
            body = await refused.json()
        assert body["error"] == "over_budget"
        assert "budget of 50 ms" in body["message"]
        assert body["predicted_ms"] > 50

        # A WebSocket client sees the handshake refused the same way.
        with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
            await http.ws_connect(url)
        assert handshake.value.status == 503
        assert handshake.value.headers is not None
        assert handshake.value.headers.get("Retry-After") == "3"

        clip = clip_named(speech_clips, "036_")
        await first.say(ClipAudio.from_wav(clip.path))
        await first.wait_for(lambda: any(r.audio_bytes for r in first.received), 30.0)
        assert "error" not in first.types(), first.received

        async with http.get(f"{cluster.http_url}/metrics") as metrics:
            text = await metrics.text()
        assert 'voice_sessions_admitted_total{outcome="over_budget"} 2.0' in text
        assert 'voice_sessions_admitted_total{outcome="admitted"} 1.0' in text

        # The stages report their load as gauges too (tts recorded the answer's first audio).
        port = cluster.config.metrics_ports["tts"]
        async with http.get(f"http://{cluster.config.host}:{port}/metrics") as stage:
            gauges = await stage.text()
        samples = [
            float(line.split()[-1])
            for line in gauges.splitlines()
            if line.startswith("voice_tts_load_recent_samples ")
        ]
        assert samples and samples[0] >= 1, gauges
    assert "refused a new session" in log_path.read_text(errors="replace")
