"""The web client in a real Chromium, against the real cluster and against a scripted gateway.

Chromium's fake microphone plays a real recorded question ("What's the weather like?"); the
test presses Talk and checks what a person would see and hear: the final transcript, the
agent's streamed answer, the latency waterfall, and agent audio actually played. A wrong token
must show a clear error. A scripted gateway (same static files, a WebSocket that plays a fixed
script) checks what the real models cannot make happen on cue: the client's frames and control
messages, and an interruption silencing scheduled audio at once, in light and dark, wide and
narrow layouts.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install chromium``) and Playwright for
Python (requirements-dev.txt); Playwright's own browser download is not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import wave
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from aiohttp import WSMsgType, web

from launcher.cluster import Cluster, ClusterConfig
from tests.conftest import ROOT, Clip, clip_named

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip(
        f"Chromium not found at {CHROMIUM} (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
try:
    from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
except ImportError:
    pytest.skip(
        "playwright is not installed (pip install -r requirements-dev.txt)",
        allow_module_level=True,
    )

# End to end as well: they start the real cluster (or a scripted gateway) and Chromium, so
# `pytest -m "not e2e"` and `make test-unit` leave them out.
pytestmark = [pytest.mark.browser, pytest.mark.e2e]

QUESTION = "036_"  # 036_whats-the-weather-like.wav, 16 kHz mono
LEAD_SILENCE_S = 0.5
# Chromium loops the fake microphone's file. The silence after the question must outlast the
# whole answer (transcription, first token, synthesis, playback: 10-20 s on a small machine),
# or the question comes round again, the gateway hears new speech, and it interrupts the answer.
TRAIL_SILENCE_S = 45.0
ANSWER_TIMEOUT_MS = 60_000
PAGE_ERRORS_IGNORED = ("favicon.ico",)
# Screenshots are kept here (ignored by git) for people to look at after a run.
ARTEFACTS = ROOT / "test-results" / "browser"


@pytest.fixture(scope="module")
def fake_microphone(speech_clips: list[Clip], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The question as a WAV for Chromium's fake microphone, with silence around it."""
    clip = clip_named(speech_clips, QUESTION)
    with wave.open(str(clip.path), "rb") as source:
        assert (source.getnchannels(), source.getsampwidth()) == (1, 2), clip.path
        rate = source.getframerate()
        pcm = source.readframes(source.getnframes())
    path = tmp_path_factory.mktemp("browser") / "fake-microphone.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(LEAD_SILENCE_S * rate))
        out.writeframes(pcm)
        out.writeframes(b"\0\0" * int(TRAIL_SILENCE_S * rate))
    return path


@pytest.fixture(scope="module")
def cluster_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("cluster") / "cluster.log"
    yield path


@pytest.fixture(scope="module")
async def cluster(cluster_log: Path) -> AsyncIterator[Cluster]:
    with cluster_log.open("w") as output:
        async with Cluster(ClusterConfig.on_free_ports(output=output)) as running:
            yield running


@pytest.fixture(scope="module")
async def browser(fake_microphone: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={fake_microphone}",
                "--autoplay-policy=no-user-gesture-required",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            yield launched
        finally:
            await launched.close()


class PageLog:
    """The page's console output and uncaught errors, for assertion messages."""

    def __init__(self, page: Page) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []
        page.on("console", lambda message: self.lines.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def real_errors(self) -> list[str]:
        return [e for e in self.errors if not any(i in e for i in PAGE_ERRORS_IGNORED)]

    def __str__(self) -> str:
        return "\n".join(["page console:", *self.lines, "page errors:", *self.errors])


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    opened = await browser.new_context(
        permissions=["microphone"], viewport={"width": 900, "height": 1000}
    )
    try:
        yield opened
    finally:
        await opened.close()


async def voice_stats(page: Page) -> dict[str, Any]:
    stats: dict[str, Any] = await page.evaluate("() => ({ ...window.voiceStats })")
    return stats


@pytest.mark.parametrize("codec", ["pcm16", "opus"])
async def test_talk_shows_transcript_answer_latency_and_plays_audio(
    cluster: Cluster, context: BrowserContext, cluster_log: Path, codec: str
) -> None:
    page = await context.new_page()
    log = PageLog(page)
    token = cluster.token()
    await page.goto(f"{cluster.http_url}/?token={token}&codec={codec}")
    await expect(page.get_by_label("Access token")).to_have_value(token)
    await expect(page.get_by_label("Audio codec")).to_have_value(codec)
    await expect(page.locator("#state")).to_have_attribute("data-state", "idle")

    started = time.perf_counter()
    await page.get_by_role("button", name="Talk").click()
    await expect(page.locator("#state")).to_have_attribute(
        "data-state", re.compile("listening|speaking"), timeout=15_000
    )
    await expect(page.get_by_role("button", name="Stop")).to_have_attribute("aria-pressed", "true")

    context_note = f"{log}\ncluster log: {cluster_log}"
    heard = page.locator(".user .final", has_text=re.compile("weather", re.IGNORECASE))
    turn = page.locator(".turn", has=heard).first
    try:
        await expect(turn).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    except AssertionError as error:
        raise AssertionError(f"{error}\nstats: {await voice_stats(page)}\n{context_note}") from None

    await expect(turn.locator(".agent .text")).to_have_text(
        re.compile(r"\w"), timeout=ANSWER_TIMEOUT_MS
    )
    waterfall = turn.locator(".waterfall")
    await expect(waterfall).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    stages = waterfall.locator(".stage")
    assert await stages.count() >= 5, await waterfall.inner_text()
    for stage in ("stt_complete", "llm_first_token", "first_audio_sent", "total"):
        row = waterfall.locator(f'.stage[data-stage="{stage}"]')
        await expect(row).to_have_count(1)
        await expect(row.locator(".ms")).to_have_text(re.compile(r"\d+ ms"))
    await expect(waterfall.locator("figcaption")).to_contain_text("ms from end of speech")

    # The agent's audio was received, scheduled, and at least one buffer played to its end.
    await page.wait_for_function(
        "() => window.voiceStats.buffersPlayed > 0", timeout=ANSWER_TIMEOUT_MS
    )
    elapsed = time.perf_counter() - started
    stats = await voice_stats(page)
    assert stats["framesSent"] > 0, stats
    assert stats["audioBytesReceived"] > 0, stats
    assert stats["buffersScheduled"] > 0, stats
    assert stats["secondsScheduled"] > 0.3, stats
    assert stats["turnsCompleted"] >= 1, stats
    assert not stats["errors"], stats
    assert await page.locator("#error").is_hidden()
    # PCM16 agent audio is 48 kB per second at 24 kHz; Opus at 32 kbit/s about 4 kB.
    received_per_s = stats["audioBytesReceived"] / stats["secondsScheduled"]
    if codec == "opus":
        assert received_per_s < 8000, stats
        assert stats["bytesSent"] / stats["framesSent"] < 200, stats  # 20 ms packets, not PCM
    else:
        assert received_per_s > 40000, stats
    print(f"{codec}: talk -> answer played in {elapsed:.1f}s; stats {stats}")

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTEFACTS / f"conversation-{codec}.png"
    await page.screenshot(path=str(screenshot), full_page=True)
    print(f"screenshot: {screenshot}")

    await page.get_by_role("button", name="Stop").click()
    await expect(page.locator("#state")).to_have_attribute("data-state", "idle")
    await expect(page.get_by_role("button", name="Talk")).to_have_attribute("aria-pressed", "false")
    assert not log.real_errors(), str(log)


async def test_wrong_token_shows_token_refused(cluster: Cluster, context: BrowserContext) -> None:
    page = await context.new_page()
    log = PageLog(page)
    await page.goto(f"{cluster.http_url}/?token=v1.not-a-real-token.nope")
    await page.get_by_role("button", name="Talk").click()

    alert = page.get_by_role("alert")
    await expect(alert).to_be_visible(timeout=15_000)
    await expect(alert).to_contain_text("Token refused")
    await expect(page.locator("#state")).to_have_attribute("data-state", "error")
    await expect(page.get_by_role("button", name="Talk")).to_be_enabled()
    stats = await voice_stats(page)
    assert stats["framesSent"] == 0, stats
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTEFACTS / "token-refused.png"), full_page=True)
    assert not log.real_errors(), str(log)


async def test_empty_token_asks_for_one(cluster: Cluster, context: BrowserContext) -> None:
    page = await context.new_page()
    await page.goto(f"{cluster.http_url}/")
    await expect(page.get_by_label("Access token")).to_have_value("")
    await page.get_by_role("button", name="Talk").click()
    await expect(page.get_by_role("alert")).to_contain_text("Token needed")
    await expect(page.locator("#state")).to_have_attribute("data-state", "idle")


# --------------------------------------------------------------------------- scripted gateway

STATIC_DIR = ROOT / "gateway" / "static"
TONE_RATE = 24000
CHUNK_MS = 20
TURN_1 = "scripted-1"
TURN_2 = "scripted-2"


@dataclass
class Script:
    """What the scripted gateway received, and how far its script got."""

    texts: list[dict[str, Any]] = field(default_factory=list)
    frame_sizes: list[int] = field(default_factory=list)
    chunks_before_interrupt: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)
    # The page's player gain while ducked (read by the test through the page).
    gain_when_ducked: float | None = None
    read_gain: Callable[[], Awaitable[float | None]] | None = None


SCRIPT = web.AppKey("script", Script)


def tone_chunks(seconds: float) -> list[bytes]:
    """A quiet 440 Hz tone as 20 ms PCM16 chunks at TONE_RATE."""
    t = np.arange(int(seconds * TONE_RATE)) / TONE_RATE
    pcm = (0.1 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    step = TONE_RATE * CHUNK_MS // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


async def play_script(ws: web.WebSocketResponse, script: Script) -> None:
    """Turn 1 is answered and interrupted mid-audio; turn 2 completes with a waterfall."""
    send = ws.send_json
    await send({"type": "transcript", "text": "what's the", "final": False, "turn_id": TURN_1})
    await send(
        {"type": "transcript", "text": "What's the weather like?", "final": True, "turn_id": TURN_1}
    )
    for delta in ("It is ", "sunny and ", "warm today, with a light breeze from the west."):
        await send({"type": "agent_text", "text": delta, "turn_id": TURN_1})
    await send({"type": "audio_start", "turn_id": TURN_1, "sample_rate": TONE_RATE})
    chunks = tone_chunks(3.0)
    for chunk in chunks:
        await ws.send_bytes(chunk)
    script.chunks_before_interrupt = len(chunks)
    await asyncio.sleep(0.2)  # part of the 3 s is playing, most is still scheduled
    await send({"type": "speech_started", "turn_id": TURN_2})
    await send({"type": "ducked", "turn_id": TURN_1, "gain": 0.25})
    await asyncio.sleep(0.1)
    if script.read_gain is not None:
        script.gain_when_ducked = await script.read_gain()
    await send({"type": "resumed", "turn_id": TURN_1})
    await asyncio.sleep(0.1)
    await send({"type": "ducked", "turn_id": TURN_1, "gain": 0.25})
    await send({"type": "interrupted", "turn_id": TURN_1})
    for chunk in tone_chunks(0.2):  # stragglers of the cancelled turn: the client drops them
        await ws.send_bytes(chunk)

    await send({"type": "transcript", "text": "And tomorrow?", "final": True, "turn_id": TURN_2})
    await send({"type": "agent_text", "text": "Rain, most likely.", "turn_id": TURN_2})
    await send({"type": "audio_start", "turn_id": TURN_2, "sample_rate": TONE_RATE})
    for chunk in tone_chunks(0.2):
        await ws.send_bytes(chunk)
    await send({"type": "audio_end", "turn_id": TURN_2})
    latency = {
        "audio_received": 0.0,
        "stt_complete": 310.2,
        "llm_start": 310.9,
        "llm_first_token": 655.0,
        "tts_start": 655.0,
        "first_audio_sent": 842.7,
        "pipeline_complete": 1204.4,
        "total": 842.7,
    }
    await send({"type": "turn_complete", "turn_id": TURN_2, "latency": latency})
    script.done.set()


async def scripted_socket(request: web.Request) -> web.WebSocketResponse:
    script = request.app[SCRIPT]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    ready = {"type": "ready", "session_id": "scripted", "sample_rate": 16000}
    await ws.send_json({**ready, "output_sample_rate": TONE_RATE})
    player: asyncio.Task[None] | None = None
    async for message in ws:
        if message.type == WSMsgType.TEXT:
            data = json.loads(message.data)
            script.texts.append(data)
            if data.get("type") == "start":
                await ws.send_json({**ready, "output_sample_rate": TONE_RATE})
            elif data.get("type") == "stop":
                break
        elif message.type == WSMsgType.BINARY:
            script.frame_sizes.append(len(message.data))
            if len(script.frame_sizes) == 10:  # the microphone streams: play the script
                player = asyncio.create_task(play_script(ws, script))
    if player is not None:
        player.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await player
    await ws.close()
    return ws


async def scripted_index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html")


@pytest.fixture
async def scripted_gateway() -> AsyncIterator[tuple[str, Script]]:
    app = web.Application()
    script = Script()
    app[SCRIPT] = script
    app.router.add_get("/", scripted_index)
    app.router.add_get("/ws/{token}", scripted_socket)
    app.router.add_static("/static/", STATIC_DIR)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", script
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(
    ("scheme", "width"), [("light", 900), ("dark", 390)], ids=["light-wide", "dark-narrow"]
)
async def test_scripted_interruption_and_layout(
    browser: Browser,
    scripted_gateway: tuple[str, Script],
    scheme: Literal["light", "dark"],
    width: int,
) -> None:
    url, script = scripted_gateway
    context = await browser.new_context(
        permissions=["microphone"],
        color_scheme=scheme,
        viewport={"width": width, "height": 900},
    )
    try:
        page = await context.new_page()
        log = PageLog(page)
        await page.goto(f"{url}/?token=scripted")

        async def read_gain() -> float | None:
            gain: float | None = await page.evaluate("() => window.voiceStats.gain")
            return gain

        script.read_gain = read_gain
        await page.get_by_role("button", name="Talk").click()

        await asyncio.wait_for(script.done.wait(), 20)
        turn_1 = page.locator(f'.turn[data-turn-id="{TURN_1}"]')
        turn_2 = page.locator(f'.turn[data-turn-id="{TURN_2}"]')
        await expect(turn_1.locator(".user .final")).to_have_text("What's the weather like?")
        await expect(turn_1.locator(".user .partial")).to_be_empty()
        await expect(turn_1.locator(".agent .text")).to_contain_text("sunny and warm today")
        await expect(turn_1.locator(".turn-status")).to_have_text("Interrupted")
        await expect(turn_2.locator(".waterfall .stage")).to_have_count(8)
        await expect(turn_2.locator('.stage[data-stage="total"] .ms')).to_have_text("843 ms")
        await page.wait_for_function("() => window.voiceStats.buffersActive === 0", timeout=5000)

        stats = await voice_stats(page)
        interrupted = script.chunks_before_interrupt
        # Ducked at the gateway's gain at once, back to full on resume and after the interruption.
        assert script.gain_when_ducked == pytest.approx(0.25)
        assert stats["ducks"] == 2 and stats["resumes"] == 1, stats
        assert stats["speechStarts"] == 1 and stats["gain"] == 1, stats
        # While turn 1 played the page said how much of it had played, and once more on the
        # interruption: within the 3 s of audio sent.
        played = [t for t in script.texts if t.get("type") == "played"]
        assert played and {t["turn_id"] for t in played} <= {TURN_1, TURN_2}, played
        turn_1_ms = [t["ms"] for t in played if t["turn_id"] == TURN_1]
        assert turn_1_ms and all(isinstance(ms, int) and 0 <= ms <= 3000 for ms in turn_1_ms)
        assert turn_1_ms == sorted(turn_1_ms), turn_1_ms
        assert stats["interruptions"] == 1, stats
        assert stats["turnsCompleted"] == 1, stats
        # The 10 stragglers after `interrupted` were received but never scheduled.
        assert stats["audioChunksReceived"] == interrupted + 20, stats
        assert stats["buffersScheduled"] == interrupted + 10, stats
        # Most of turn 1's 3 s was cut: only what played in the 0.4 s before the interruption
        # (plus turn 2's 10 chunks) ran to its end.
        assert stats["buffersPlayed"] <= 40 + 10, stats
        no_overflow = "() => document.documentElement.scrollWidth <= window.innerWidth"
        assert await page.evaluate(no_overflow), "the page scrolls sideways"
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTEFACTS / f"scripted-{scheme}-{width}.png"
        await page.screenshot(path=str(shot), full_page=True)

        await page.get_by_role("button", name="Stop").click()
        await expect(page.locator("#state")).to_have_attribute("data-state", "idle")
        for _ in range(50):
            if script.texts and script.texts[-1].get("type") == "stop":
                break
            await asyncio.sleep(0.05)
        start = {
            "type": "start",
            "sample_rate": 16000,
            "output_sample_rate": 24000,
            "codec": "pcm16",
        }
        assert script.texts[0] == start, script.texts
        assert script.texts[-1] == {"type": "stop"}, script.texts
        assert set(script.frame_sizes) == {640}, set(script.frame_sizes)  # 20 ms at 16 kHz
        assert not log.real_errors(), str(log)
    finally:
        await context.close()
