"""GATEWAY_ADMISSION=hold for real: a session that does not fit is told to hold, starts when
the session before it leaves, and one held past GATEWAY_HOLD_TIMEOUT_S is told and closed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from launcher.cluster import Cluster, ClusterConfig
from tools.live import LiveSession

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def holding(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    log_path = tmp_path_factory.mktemp("hold") / "cluster.log"
    with log_path.open("w") as log:
        config = ClusterConfig.on_free_ports(output=log, env={"OTEL_SDK_DISABLED": "true"})
        config.env_for = {
            "gateway": {
                "GATEWAY_ADMISSION": "hold",
                "GATEWAY_LATENCY_BUDGET_MS": "50",
                "GATEWAY_HOLD_TIMEOUT_S": "4",
            }
        }
        async with Cluster(config) as running:
            yield running


async def test_a_held_session_starts_when_the_one_before_leaves_and_a_later_one_times_out(
    holding: Cluster,
) -> None:
    url = f"{holding.ws_url}/ws/{holding.token()}"
    async with aiohttp.ClientSession() as http:
        first = LiveSession(http, url, start={})
        await first.__aenter__()
        await first.wait_for(lambda: "ready" in first.types(), 15.0)
        async with LiveSession(http, url, start={}) as second:
            await second.wait_for(lambda: "hold" in second.types(), 10.0)
            assert "ready" not in second.types()
            hold = next(r.data for r in second.received if r.type == "hold")
            assert hold is not None and hold["retry_after_s"] >= 1
            await first.__aexit__()
            await second.wait_for(lambda: "ready" in second.types(), 10.0)

            async with LiveSession(http, url, start={}) as third:
                await third.wait_for(lambda: "hold" in third.types(), 10.0)
                await third.wait_for(lambda: third.ws.closed, 15.0)
                assert "ready" not in third.types()
                errors = [r.data for r in third.received if r.type == "error"]
                assert errors and errors[-1] is not None and errors[-1]["code"] == "busy"
                assert third.ws.close_code == 1013

        async with http.get(f"{holding.http_url}/metrics") as metrics:
            text = await metrics.text()
        assert 'voice_sessions_admitted_total{outcome="held"} 2.0' in text
        assert 'voice_sessions_admitted_total{outcome="hold_timeout"} 1.0' in text
        assert 'voice_sessions_admitted_total{outcome="admitted"} 2.0' in text
