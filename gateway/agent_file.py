"""What the gateway takes from the agent file (``LLM_AGENT_FILE``, docs/agent.md): its voice.

The llm service reads the rest (instructions, tools) and checks the whole file; the gateway
asks tts for the agent's voice when the client's ``start`` names none.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class AgentFileError(ValueError):
    """The agent file cannot be read as YAML."""


def agent_voice(agent_file: str) -> str:
    """The ``voice:`` of the agent file ('' without a file or a voice)."""
    if not agent_file:
        return ""
    try:
        data = yaml.safe_load(Path(agent_file).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise AgentFileError(f"LLM_AGENT_FILE={agent_file}: {error}") from error
    if not isinstance(data, dict):
        raise AgentFileError(f"LLM_AGENT_FILE={agent_file}: expected a mapping")
    return str(data.get("voice") or "")
