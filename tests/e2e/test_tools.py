"""Tools end to end: a spoken question that needs a tool, and the embedded model answering from
the knowledge base.

"What time is it?" is spoken by the embedded Piper voice (no corpus needed) to the whole
cluster with its embedded default; the answer must carry the minutes the current_time tool
read from the clock. The knowledge question goes to the embedded model in this process, with
a knowledge folder holding a fact it cannot know otherwise.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import pytest

from services.llm.engine import Message, Turn
from services.llm.local import LocalLlama
from services.llm.settings import DEFAULT_SYSTEM_PROMPT, LlmSettings
from services.llm.tool_loop import ToolLoop, TurnTools
from services.llm.tools.agent import load_agent
from services.tts.piper import PiperEngine
from tests.e2e.conftest import RunningCluster
from tools.client import ClipAudio, talk
from voice.audio import Resampler
from voice.v1 import llm_pb2

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ONES = [
    *("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    *("ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen"),
    *("eighteen", "nineteen"),
]
TENS = {2: "twenty", 3: "thirty", 4: "forty", 5: "fifty"}


def minute_spellings(minute: int) -> list[str]:
    """How a reply may say the minutes: 42, forty-two, forty two; 07, seven; o'clock."""
    if minute < 20:
        spelled = [ONES[minute]]
    elif minute % 10 == 0:
        spelled = [TENS[minute // 10]]
    else:
        tens, ones = TENS[minute // 10], ONES[minute % 10]
        spelled = [f"{tens}-{ones}", f"{tens} {ones}"]
    return [f"{minute:02d}", *spelled, *(["o'clock"] if minute == 0 else [])]


async def spoken(text: str) -> ClipAudio:
    engine = await asyncio.to_thread(PiperEngine)
    pcm = b"".join(await asyncio.to_thread(lambda: list(engine.synthesize(text))))
    pcm16k = Resampler(engine.sample_rate, 16000).process(pcm, last=True)
    return ClipAudio(b"\x00\x00" * 8000 + pcm16k, 16000)


async def test_what_time_is_it_is_answered_from_the_tool(cluster: RunningCluster) -> None:
    result = await talk(cluster.url(), await spoken("What time is it?"), answer_timeout_s=60)
    assert not result.errors, result.errors
    calls = [e for e in result.events if e.get("type") == "tool_call"]
    results = [e for e in result.events if e.get("type") == "tool_result"]
    kinds = [e.get("type") for e in result.events]
    assert [c["name"] for c in calls][:1] == ["current_time"], (kinds, result.agent_text)
    assert results[0]["outcome"] == "ok"
    told = re.search(r"It is (\d+):(\d\d) ([AP]M)", results[0]["result"])
    assert told, results[0]["result"]
    now = dt.datetime.now()
    hour = int(told.group(1)) % 12 + (12 if told.group(3) == "PM" else 0)
    read = now.replace(hour=hour, minute=int(told.group(2)))
    assert abs((now - read).total_seconds()) < 180, "the tool's time is not the clock's"
    spoken_text = result.agent_text.lower()
    assert any(s in spoken_text for s in minute_spellings(read.minute)), result.agent_text
    assert {"tool_call", "tool_result"} <= set(result.waterfall)


async def test_the_embedded_model_answers_from_the_knowledge_base(tmp_path: Path) -> None:
    (tmp_path / "bakery.md").write_text(
        "# Opening hours\n\nOn Sundays Rosa's Bakery opens at 11 AM and closes at 3 PM.\n"
    )
    settings = LlmSettings.from_env({"LLM_PARALLEL": "1"})
    agent = await load_agent(
        "", builtins=("current_time",), time_zone="", knowledge_dir=str(tmp_path)
    )
    engine = await asyncio.to_thread(LocalLlama, settings)
    events: list[llm_pb2.ConverseResponse] = []
    state = TurnTools("kb", events.append)
    state.confirmed.set()
    question = "When does Rosa's Bakery open on Sundays?"
    instructions = (
        DEFAULT_SYSTEM_PROMPT + " You answer for Rosa's Bakery. For any question about the "
        "bakery, call search_knowledge first and answer from what it finds."
    )
    turn = Turn((Message("system", instructions), Message("user", question)), 96, session_id="kb")
    reply = "".join([t async for t in ToolLoop(agent.tools).reply(engine, turn, state)])
    await agent.aclose()
    names = [e.tool_call.name for e in events if e.HasField("tool_call")]
    assert "search_knowledge" in names, (names, reply)
    assert re.search(r"\b(11|eleven)\b", reply.lower()), reply
