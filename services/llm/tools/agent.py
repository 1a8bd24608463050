"""The agent definition file (``LLM_AGENT_FILE``, YAML): instructions, voice, knowledge, tools.

Everything a user sets up for their agent is here, none of it in the services' code; the format
with a complete example is in docs/agent.md. Without a file the agent is the default assistant
with the built-in tools in ``LLM_TOOLS``. Every mistake in the file is reported at start with
its place (``tools[2]: ...``), and the service does not start.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from services.llm.tools.builtins import (
    BUILTIN_NAMES,
    calculate_tool,
    current_time_tool,
    end_call_tool,
)
from services.llm.tools.knowledge import knowledge_tool
from services.llm.tools.mcp_tools import McpConnection, McpServer
from services.llm.tools.python_tools import from_function, import_function
from services.llm.tools.spec import DEFAULT_TIMEOUT_S, Tool, ToolRegistry, ToolSpec
from services.llm.tools.webhook import Webhooks, webhook_tool

log = logging.getLogger(__name__)

AGENT_KEYS = {"name", "instructions", "voice", "time_zone", "knowledge", "builtins", "tools"}


class AgentFileError(ValueError):
    """The agent file is missing, unreadable, or says something that cannot be."""


@dataclass
class AgentDefinition:
    """The file as read (nothing connected yet)."""

    name: str = "assistant"
    instructions: str = ""
    voice: str = ""
    time_zone: str = ""
    knowledge: Path | None = None
    builtins: tuple[str, ...] = ("current_time", "calculate")
    tools: list[dict[str, Any]] = field(default_factory=list)
    folder: Path = field(default_factory=Path.cwd)


@dataclass
class Agent:
    """The agent ready to serve: its tools connected. ``aclose`` disconnects them."""

    definition: AgentDefinition
    tools: ToolRegistry
    _closers: list[Any] = field(default_factory=list)

    async def aclose(self) -> None:
        for closer in reversed(self._closers):
            try:
                await closer.aclose()
            except Exception as error:  # closing one must not keep the rest open
                log.warning("closing %s failed: %s", type(closer).__name__, error)


def read_definition(path: Path) -> AgentDefinition:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as error:
        raise AgentFileError(f"{path}: cannot read it: {error}") from error
    except yaml.YAMLError as error:
        raise AgentFileError(f"{path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise AgentFileError(f"{path}: expected a mapping (instructions:, tools:, ...)")
    unknown = sorted(set(data) - AGENT_KEYS)
    if unknown:
        raise AgentFileError(f"{path}: unknown keys {unknown}; known: {sorted(AGENT_KEYS)}")
    folder = path.resolve().parent
    knowledge = data.get("knowledge")
    builtins = data.get("builtins", ["current_time", "calculate"])
    if not isinstance(builtins, list) or any(b not in BUILTIN_NAMES for b in builtins):
        raise AgentFileError(f"{path}: builtins: a list of {', '.join(BUILTIN_NAMES)}")
    tools = data.get("tools") or []
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise AgentFileError(f"{path}: tools: a list of mappings (python:, webhook: or mcp:)")
    return AgentDefinition(
        name=str(data.get("name", "assistant")),
        instructions=str(data.get("instructions", "")).strip(),
        voice=str(data.get("voice", "")),
        time_zone=str(data.get("time_zone", "")),
        knowledge=(folder / str(knowledge)) if knowledge else None,
        builtins=tuple(builtins),
        tools=tools,
        folder=folder,
    )


def _spec(entry: dict[str, Any], where: str) -> ToolSpec:
    name = entry.get("name")
    description = entry.get("description")
    if not name or not description:
        raise AgentFileError(f"{where}: a webhook needs a name and a description")
    parameters = entry.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        raise AgentFileError(f"{where}: parameters must be a JSON schema of type object")
    return ToolSpec(str(name), str(description), parameters, bool(entry.get("side_effects")))


async def build_agent(
    definition: AgentDefinition, *, time_zone: str = "", knowledge: Path | None = None
) -> Agent:
    """Connect the definition's tools. ``time_zone``/``knowledge``: the settings' defaults."""
    agent = Agent(definition, ToolRegistry())
    webhooks = Webhooks()
    agent._closers.append(webhooks)
    try:
        folder = definition.knowledge or knowledge
        for name in definition.builtins:
            if name == "current_time":
                agent.tools.add(current_time_tool(definition.time_zone or time_zone))
            elif name == "calculate":
                agent.tools.add(calculate_tool())
            elif name == "end_call":
                agent.tools.add(end_call_tool())
        if folder is not None:
            agent.tools.add(knowledge_tool(folder))
        elif "search_knowledge" in definition.builtins:
            raise AgentFileError("builtins: search_knowledge needs a knowledge: folder")
        for index, entry in enumerate(definition.tools):
            where = f"tools[{index}]"
            for tool in await _tools_of(entry, where, definition.folder, webhooks, agent):
                agent.tools.add(tool)
    except BaseException:
        await agent.aclose()
        raise
    log.info("agent %s: tools %s", definition.name, ", ".join(agent.tools.names) or "none")
    return agent


async def _tools_of(
    entry: dict[str, Any], where: str, folder: Path, webhooks: Webhooks, agent: Agent
) -> list[Tool]:
    timeout_s = float(entry.get("timeout_s", DEFAULT_TIMEOUT_S))
    side_effects = bool(entry.get("side_effects", False))
    try:
        if "python" in entry:
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            function = import_function(str(entry["python"]))
            name = str(entry.get("name", ""))
            return [
                from_function(function, side_effects=side_effects, timeout_s=timeout_s, name=name)
            ]
        if "webhook" in entry:
            return [
                webhook_tool(
                    _spec(entry, where),
                    str(entry["webhook"]),
                    clients=webhooks,
                    method=str(entry.get("method", "POST")),
                    headers={str(k): str(v) for k, v in (entry.get("headers") or {}).items()},
                    timeout_s=timeout_s,
                )
            ]
        if "mcp" in entry:
            target = entry["mcp"]
            server = McpServer(
                name=str(entry.get("name", "mcp")),
                command=[str(part) for part in target] if isinstance(target, list) else [],
                url=target if isinstance(target, str) else "",
                env={str(k): str(v) for k, v in entry["env"].items()} if entry.get("env") else None,
                prefix=str(entry.get("prefix", "")),
                side_effects=side_effects,
                timeout_s=timeout_s,
            )
            connection = McpConnection(server)
            tools = await connection.open()
            agent._closers.append(connection)
            return tools
    except AgentFileError:
        raise
    except Exception as error:
        raise AgentFileError(f"{where}: {error}") from error
    raise AgentFileError(f"{where}: expected one of python:, webhook: or mcp:")


async def load_agent(
    agent_file: str, *, builtins: tuple[str, ...], time_zone: str, knowledge_dir: str
) -> Agent:
    """The agent of ``LLM_AGENT_FILE``, or without one the built-ins in ``LLM_TOOLS``."""
    if agent_file:
        definition = read_definition(Path(agent_file))
    else:
        chosen = tuple(name for name in builtins if name not in ("none", "search_knowledge"))
        definition = AgentDefinition(builtins=chosen)
    return await build_agent(
        definition,
        time_zone=time_zone,
        knowledge=Path(knowledge_dir) if knowledge_dir else None,
    )
