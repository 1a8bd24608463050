"""make bench-peer's pieces that run without Pipecat: turn numbering, the ratio, the config."""

from __future__ import annotations

import pytest

from bench.peer.__main__ import peer_config, ratios
from bench.peer.process import REQUIREMENTS
from bench.peer.turns import TurnState
from services.llm.settings import DEFAULT_SYSTEM_PROMPT

pytestmark = pytest.mark.unit


def test_a_turn_is_every_transcript_until_the_agent_starts_answering() -> None:
    state = TurnState(16000, 24000)
    assert state.on_transcript() == 1
    assert state.on_transcript() == 1  # the user paused and went on: the same turn
    state.on_reply_started()
    assert state.on_tts_started() == 1
    assert state.on_tts_started() is None  # the reply's second sentence
    assert state.on_transcript() == 2  # the next user turn


def test_the_turn_is_complete_when_the_bot_stops_after_the_reply_ended() -> None:
    state = TurnState(16000, 24000)
    state.on_transcript()
    state.on_reply_started()
    state.on_tts_started()
    assert state.on_bot_stopped() is None  # between sentences: the LLM is still writing
    state.on_reply_ended()
    assert state.on_bot_stopped() == 1
    assert state.on_bot_stopped() is None  # told once


def test_the_ready_message_is_the_gateways() -> None:
    ready = TurnState(16000, 24000).ready()
    assert ready["type"] == "ready"
    assert (ready["sample_rate"], ready["output_sample_rate"], ready["codec"]) == (
        16000,
        24000,
        "pcm16",
    )
    assert ready["session_id"]


def test_the_ratio_is_pipecat_over_the_project() -> None:
    project = {"p50_ms": 500.0, "p90_ms": 800.0}
    peer = {"p50_ms": 1000.0, "p90_ms": 2000.0}
    assert ratios(project, peer) == {"p50_ms": 2.0, "p90_ms": 2.5}
    assert ratios({"p50_ms": None, "p90_ms": None}, peer) == {"p50_ms": None, "p90_ms": None}


def test_the_peer_gets_the_projects_settings_and_a_pinned_pipecat() -> None:
    config = peer_config()
    assert config.system_prompt == DEFAULT_SYSTEM_PROMPT
    assert config.voice.name == "en_US-joe-medium.onnx"
    assert (config.whisper / "model.bin").exists()
    pins = [
        line
        for line in REQUIREMENTS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert all("==" in line for line in pins)
    assert "pipecat-ai[piper,websocket,whisper]==1.14.0" in pins
