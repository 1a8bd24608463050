"""Every tool of an MCP server, through the official ``mcp`` SDK (stdio or streamable HTTP).

The connection opens when the service starts and stays open; one task owns it (the SDK's
transports are anyio task groups that must be entered and left by the same task), and calls
are handed to that task's session. The tools are listed once at start; their names may be
prefixed (``prefix: calendar_``) to keep two servers' tools apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from services.llm.tools.spec import DEFAULT_TIMEOUT_S, Tool, ToolSpec

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0


class McpToolError(RuntimeError):
    """The server reported the call as an error."""


@dataclass
class McpServer:
    """How to reach one server: a command (stdio) or a URL (streamable HTTP)."""

    name: str
    command: list[str] = field(default_factory=list)
    url: str = ""
    env: dict[str, str] | None = None
    prefix: str = ""
    side_effects: bool = False
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if bool(self.command) == bool(self.url):
            raise ValueError(f"mcp server {self.name}: give either a command or a url")


class McpConnection:
    def __init__(self, server: McpServer) -> None:
        self.server = server
        self._session: Any = None
        self._ready: asyncio.Future[list[Any]] | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def _transport(self) -> AsyncIterator[tuple[Any, Any]]:
        if self.server.url:
            from mcp.client.streamable_http import streamable_http_client

            async with streamable_http_client(self.server.url) as streams:
                yield streams[0], streams[1]
        else:
            from mcp import StdioServerParameters
            from mcp.client.stdio import stdio_client

            command, *args = self.server.command
            parameters = StdioServerParameters(command=command, args=args, env=self.server.env)
            async with stdio_client(parameters) as (read, write):
                yield read, write

    async def _own(self) -> None:
        from mcp import ClientSession

        assert self._ready is not None
        try:
            async with self._transport() as (read, write), ClientSession(read, write) as session:
                await session.initialize()
                listed = await session.list_tools()
                self._session = session
                self._ready.set_result(list(listed.tools))
                await self._stop.wait()
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(
                    error if isinstance(error, Exception) else RuntimeError(repr(error))
                )
            elif not isinstance(error, asyncio.CancelledError):
                log.error("mcp server %s: connection lost: %s", self.server.name, error)
            if isinstance(error, asyncio.CancelledError):
                raise
        finally:
            self._session = None

    async def open(self) -> list[Tool]:
        self._ready = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._own(), name=f"mcp-{self.server.name}")
        try:
            listed = await asyncio.wait_for(asyncio.shield(self._ready), CONNECT_TIMEOUT_S)
        except Exception as error:
            await self.aclose()
            raise RuntimeError(f"mcp server {self.server.name}: cannot connect: {error}") from error
        tools = [self._tool(entry) for entry in listed]
        log.info("mcp server %s: %d tools", self.server.name, len(tools))
        return tools

    def _tool(self, entry: Any) -> Tool:
        schema = dict(entry.input_schema or {"type": "object", "properties": {}})
        spec = ToolSpec(
            self.server.prefix + entry.name,
            entry.description or entry.title or entry.name,
            schema,
            self.server.side_effects,
        )
        remote_name = entry.name

        async def run(arguments: dict[str, Any]) -> str:
            return await self.call(remote_name, arguments)

        return Tool(spec, run, self.server.timeout_s, source=f"mcp:{self.server.name}")

    async def call(self, name: str, arguments: dict[str, Any]) -> str:
        session = self._session
        if session is None:
            raise McpToolError(f"the {self.server.name} server is not connected")
        result = await session.call_tool(name, arguments)
        texts = [getattr(part, "text", "") for part in getattr(result, "content", []) or []]
        text = "\n".join(t for t in texts if t)
        if not text and getattr(result, "structured_content", None) is not None:
            text = str(result.structured_content)
        if getattr(result, "is_error", False):
            raise McpToolError(text or "the tool reported an error")
        return text

    async def aclose(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 5.0)
            except (TimeoutError, Exception):
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
