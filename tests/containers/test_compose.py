"""The images really run: the compose cluster answers a real question, its spans arrive, every
container is hardened and healthy, replicas share the sessions and survive one killed, and
`docker compose stop` lets a turn in progress finish.

The tests run in this order on one cluster (module scope); the last one stops it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from tests.conftest import Clip, clip_named
from tests.containers.cluster import ComposeCluster, docker, engine_problem
from tests.e2e.test_conversation import assert_spoken_answer
from tests.e2e.test_faults import answered_again
from tools.client import ClipAudio, talk
from tools.live import LiveSession
from tools.wer import normalize_transcript as normalized

pytestmark = [pytest.mark.containers, pytest.mark.asyncio(loop_scope="session")]

OUR_SERVICES = ("jaeger", "stt", "llm", "tts", "gateway")
STAGE_SPANS = {"stt.utterance": "stt", "llm.generate": "llm", "tts.synthesize": "tts"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def compose(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ComposeCluster]:
    problem = engine_problem()
    if problem:
        pytest.fail(problem)
    cluster = ComposeCluster()
    log_path: Path = tmp_path_factory.mktemp("containers") / "compose.log"
    cluster.create_network()
    try:
        started = time.monotonic()
        await asyncio.to_thread(cluster.compose, "up", "-d", "--wait", timeout_s=420)
        print(f"\ncompose cluster healthy in {time.monotonic() - started:.0f} s")
        yield cluster
    finally:
        await asyncio.to_thread(log_path.write_text, cluster.logs())
        print(f"container logs: {log_path}")
        await asyncio.to_thread(
            cluster.compose, "down", "--volumes", "--remove-orphans", "--timeout", "10"
        )
        cluster.remove_network()


async def test_every_container_runs_as_uid_10001_on_a_read_only_root_and_is_healthy(
    compose: ComposeCluster,
) -> None:
    containers = compose.containers()
    assert {c.rsplit("-", 2)[-2] for c in containers} == set(OUR_SERVICES), containers
    for container in containers:
        info = compose.inspect(container)
        assert info["Config"]["User"] == "10001:10001", container
        assert info["HostConfig"]["ReadonlyRootfs"] is True, container
        assert info["HostConfig"]["CapDrop"] == ["ALL"], container
        # Healthy by its own check: the image's probe (gRPC health, or the HTTP endpoint).
        assert "/app/probe.py" in info["Config"]["Healthcheck"]["Test"], container
        assert compose.health(container) == "healthy", container
        assert docker("exec", container, "id", "-u").strip() == "10001"
        docker("exec", container, "sleep", "0")  # the Kubernetes preStop hook runs `sleep 5`
        wrote = docker("exec", container, "sh", "-c", "touch /app/x 2>/dev/null || echo refused")
        assert wrote.strip() == "refused", f"{container}: the root filesystem is writable"


async def test_a_real_question_through_the_containers(
    compose: ComposeCluster, speech_clips: list[Clip]
) -> None:
    clip = clip_named(speech_clips, "036_")
    result = await talk(compose.ws_url(), ClipAudio.from_wav(clip.path))
    assert normalized(result.transcript) == clip.transcript_normalized
    assert_spoken_answer(result)
    print(f"\nend of speech -> first audible audio (containers): {result.latency_ms:.0f} ms")


async def test_the_turn_s_spans_arrived_from_all_four_containers(compose: ComposeCluster) -> None:
    deadline = time.monotonic() + 30.0
    while True:
        spans = await compose.spans()
        turns = [s for s in spans if s["name"] == "voice.turn" and s["service"] == "gateway"]
        complete = [
            turn
            for turn in turns
            if set(STAGE_SPANS) <= {s["name"] for s in spans if s["trace_id"] == turn["trace_id"]}
        ]
        if complete or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert complete, f"no complete turn trace; received {sorted({s['name'] for s in spans})}"
    turn = complete[0]
    in_trace = [s for s in spans if s["trace_id"] == turn["trace_id"]]
    for name, service in STAGE_SPANS.items():
        [child] = [s for s in in_trace if s["name"] == name]
        assert child["service"] == service
        assert child["parent_span_id"] == turn["span_id"], f"{name} is not under the turn"
    assert "first_audio_sent" in turn["events"]


async def streams_per_replica(compose: ComposeCluster, stage: str) -> dict[str, float]:
    replicas = compose.containers(stage)
    counts = await asyncio.gather(*(compose.active_streams(c, stage) for c in replicas))
    return dict(zip(replicas, counts, strict=True))


async def test_two_replicas_of_stt_and_llm_share_the_sessions_and_survive_one_killed(
    compose: ComposeCluster, speech_clips: list[Clip]
) -> None:
    await asyncio.to_thread(
        compose.compose,
        *("up", "-d", "--wait", "--no-recreate", "--scale", "stt=2", "--scale", "llm=2"),
        timeout_s=300,
    )
    assert len(compose.containers("stt")) == 2 and len(compose.containers("llm")) == 2
    # The gateway resolves a stage's name to its replicas when it connects (and again when a
    # connection fails): restarted, it balances the new sessions over both.
    [gateway] = compose.containers("gateway")
    await asyncio.to_thread(compose.compose, "restart", "gateway", timeout_s=120)
    await asyncio.to_thread(compose.wait_healthy, gateway)

    clip = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    url = compose.ws_url()
    sessions = 4
    async with aiohttp.ClientSession() as http:
        opened = [LiveSession(http, url, start={"sample_rate": 16000}) for _ in range(sessions)]
        for session in opened:
            await session.__aenter__()
        try:
            for session in opened:
                await session.wait_for(partial(is_ready, session), 15.0)
            await asyncio.sleep(1.0)
            spread = {stage: await streams_per_replica(compose, stage) for stage in ("stt", "llm")}
            print(f"\nactive streams per replica, {sessions} sessions: {spread}")
            for stage, counts in spread.items():
                assert sum(counts.values()) == sessions, (stage, counts)
                assert all(count >= 1 for count in counts.values()), (stage, counts)

            killed = [compose.containers(stage)[0] for stage in ("stt", "llm")]
            for container in killed:
                docker("kill", container)
            # A session whose replica died reopens its stream on the other one within about a
            # second; a turn asked in between gets `upstream_unavailable`, and is asked again.
            for session in opened:
                await answered_again(session, clip)
            for session in opened:
                assert not session.ws.closed
            survivors = {s: await streams_per_replica(compose, s) for s in ("stt", "llm")}
            print(f"after killing {killed}: {survivors}")
            for stage, counts in survivors.items():
                assert list(counts.values()) == [sessions], (stage, counts)
        finally:
            for session in opened:
                await session.__aexit__(None, None, None)


def is_ready(session: LiveSession) -> bool:
    return "ready" in session.types()


def final_transcript(session: LiveSession) -> bool:
    return any(e.get("type") == "transcript" and e.get("final") for e in session.events)


async def test_compose_stop_lets_a_turn_in_progress_finish(
    compose: ComposeCluster, speech_clips: list[Clip]
) -> None:
    clip = ClipAudio.from_wav(clip_named(speech_clips, "036_").path)
    [gateway] = compose.containers("gateway")
    async with aiohttp.ClientSession() as http:
        session = LiveSession(http, compose.ws_url(), start={"sample_rate": 16000})
        async with session:
            await session.say(clip, silence_s=0.0)
            listening = asyncio.create_task(session.keep_listening(20.0))
            await session.wait_for(lambda: final_transcript(session), 20.0)
            assert "turn_complete" not in session.types()
            stopping = asyncio.create_task(
                asyncio.to_thread(compose.compose, "stop", "--timeout", "30", timeout_s=120)
            )
            await session.wait_for(lambda: session.close_code is not None, 40.0)
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await stopping
    assert "turn_complete" in session.types(), session.types()  # the turn was finished
    [complete] = [e for e in session.events if e["type"] == "turn_complete"]
    assert session.audio_of(str(complete["turn_id"])), "the drained turn sent no audio"
    assert session.close_code == 1001
    state = compose.inspect(gateway)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 0, state
