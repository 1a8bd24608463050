"""A Python function's tool schema from its signature and docstring; the agent file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from services.llm.tools.agent import AgentFileError, build_agent, read_definition
from services.llm.tools.python_tools import from_function, schema_of

pytestmark = pytest.mark.unit


def book_table(day: str, people: int = 2, area: Literal["inside", "terrace"] = "inside") -> str:
    """Book a table at the restaurant.

    Args:
        day: The day of the booking,
            e.g. "Friday".
        people: How many people.
    """
    return f"booked {day} for {people} ({area})"


def test_the_schema_comes_from_the_signature_and_the_docstring() -> None:
    spec = schema_of(book_table)
    assert spec.name == "book_table"
    assert spec.description == "Book a table at the restaurant."
    assert spec.parameters == {
        "type": "object",
        "properties": {
            "day": {"type": "string", "description": 'The day of the booking, e.g. "Friday".'},
            "people": {"type": "integer", "description": "How many people."},
            "area": {"type": "string", "enum": ["inside", "terrace"]},
        },
        "required": ["day"],
    }


def test_a_function_without_docstring_or_types_is_refused() -> None:
    def nameless(x: int) -> int:
        return x

    def untyped(x):  # type: ignore[no-untyped-def]
        """Does things."""

    with pytest.raises(ValueError, match="docstring"):
        schema_of(nameless)
    with pytest.raises(TypeError, match="annotation"):
        schema_of(untyped)


async def test_a_sync_function_runs_off_the_loop_and_its_result_is_text() -> None:
    tool = from_function(book_table, side_effects=True)
    assert tool.spec.side_effects
    assert await tool.run({"day": "Friday", "people": 4}) == "booked Friday for 4 (inside)"


def test_an_agent_file_is_read_and_its_mistakes_are_placed(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("instructions: Be kind.\nvoice: en_US-amy\nbuiltins: [current_time]\n")
    definition = read_definition(path)
    assert (definition.instructions, definition.voice) == ("Be kind.", "en_US-amy")
    path.write_text("instructions: x\ntool: []\n")
    with pytest.raises(AgentFileError, match="unknown keys"):
        read_definition(path)
    path.write_text("builtins: [clock]\n")
    with pytest.raises(AgentFileError, match="builtins"):
        read_definition(path)


async def test_an_agent_file_builds_its_tools(tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "a.md").write_text("Parking is free.\n")
    (tmp_path / "shop_tools.py").write_text(
        "def order_status(order: str) -> str:\n"
        '    """The status of an order.\n\n    Args:\n        order: Its number.\n    """\n'
        "    return f'{order} has shipped'\n"
    )
    path = tmp_path / "agent.yaml"
    path.write_text(
        "knowledge: kb\nbuiltins: [calculate, end_call]\ntools:\n"
        "  - python: shop_tools:order_status\n"
        "  - webhook: http://127.0.0.1:9/book\n    name: book\n    description: Book it.\n"
        "    side_effects: true\n"
        "  - webhook: http://127.0.0.1:9/x\n"
    )
    with pytest.raises(AgentFileError, match=r"tools\[2\]: a webhook needs a name"):
        await build_agent(read_definition(path))
    path.write_text(path.read_text().rsplit("  - webhook: http://127.0.0.1:9/x", 1)[0])
    agent = await build_agent(read_definition(path))
    try:
        assert agent.tools.names == [
            "calculate",
            "end_call",
            "search_knowledge",
            "order_status",
            "book",
        ]
        book = agent.tools.get("book")
        assert book is not None and book.spec.side_effects
        order = agent.tools.get("order_status")
        assert order is not None and await order.run({"order": "A7"}) == "A7 has shipped"
    finally:
        await agent.aclose()


def test_the_gateway_takes_the_agent_file_s_voice(tmp_path: Path) -> None:
    from gateway.settings import GatewaySettings

    path = tmp_path / "agent.yaml"
    path.write_text("voice: en_US-joe-medium\ninstructions: Hi.\n")
    env = {"LLM_AGENT_FILE": str(path), "GATEWAY_TOKENS": "t"}
    assert GatewaySettings.from_env(env).agent_voice == "en_US-joe-medium"
    assert GatewaySettings.from_env({"GATEWAY_TOKENS": "t"}).agent_voice == ""
