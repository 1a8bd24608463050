"""A small MCP server for the tool tests: a calendar over stdio (the official ``mcp`` SDK).

Run as ``python tests/integration/mcp_calendar_server.py``; the llm service starts it as an
agent file's ``mcp:`` command would.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("calendar")


@server.tool()
def free_slots(day: str) -> str:
    """The free appointment slots on a day."""
    return f"On {day} 10:00 and 14:30 are free."


@server.tool()
def book_slot(day: str, time: str) -> str:
    """Book an appointment slot."""
    return f"Booked {day} at {time}."


if __name__ == "__main__":
    server.run("stdio")
