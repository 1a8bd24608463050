"""The embedded model's tool format: the tools block, the grammar, parsing what it emits."""

from __future__ import annotations

import pytest

from services.llm.demo_tools import choose_call
from services.llm.engine import Message
from services.llm.local_tools import (
    chat_messages,
    grammar_for,
    looks_like_call,
    parse_call,
    words_in_call_text,
)
from services.llm.tools.builtins import calculate_tool, current_time_tool, end_call_tool
from services.llm.tools.spec import ToolCall, ToolSpec

pytestmark = pytest.mark.unit

BOOK = ToolSpec(
    "book",
    "Book a table.",
    {
        "type": "object",
        "properties": {
            "day": {"type": "string", "enum": ["friday", "saturday"]},
            "people": {"type": "integer"},
            "note": {"type": "string"},
        },
        "required": ["day", "people"],
    },
)
TOOLS = (current_time_tool("").spec, calculate_tool().spec, BOOK)


def test_the_grammar_names_each_tool_and_its_arguments() -> None:
    grammar = grammar_for(TOOLS)
    assert grammar.startswith("root ::= call | text\n")
    assert r'"\"current_time\", \"arguments\": " "{}"' in grammar
    assert r'"\"expression\": " str' in grammar
    assert r'"\"day\": " ( "\"friday\"" | "\"saturday\"" ) ", " "\"people\": " int' in grammar
    assert r'( ", " "\"note\": " str )?' in grammar


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>\n{"name": "calculate", "arguments": {"expression": "6*7"}}\n</tool_call>',
        '```json\n{"name": "calculate", "arguments": {"expression": "6*7"}}\n```',
        '{"name": "calculate", "arguments": {"expression": "6*7"}}',
    ],
)
def test_each_framing_of_a_call_parses(text: str) -> None:
    assert looks_like_call(text)
    call = parse_call(text, TOOLS)
    assert call is not None and (call.name, call.arguments) == ("calculate", {"expression": "6*7"})


def test_text_and_unknown_tools_are_not_calls() -> None:
    assert not looks_like_call("It is noon.")
    assert looks_like_call("<")  # a call's first token may be a lone character
    assert parse_call('{"name": "fly", "arguments": {}}', TOOLS) is None
    assert parse_call("{not json", TOOLS) is None


def test_the_tools_block_goes_into_the_system_prompt_and_results_are_tool_messages() -> None:
    call = ToolCall("c1", "calculate", {"expression": "1+1"})
    messages = chat_messages(
        (
            Message("system", "Be brief."),
            Message("user", "1+1?"),
            Message("assistant", "", tool_calls=(call,)),
            Message("tool", "1+1 = 2", tool_call_id="c1", name="calculate"),
        ),
        TOOLS,
    )
    assert messages[0]["content"].startswith("Be brief.\n\n# Tools")
    assert '"name": "calculate"' in messages[0]["content"]
    assert messages[2]["tool_calls"][0]["function"] == {
        "name": "calculate",
        "arguments": '{"expression": "1+1"}',
    }
    assert messages[3] == {"role": "tool", "tool_call_id": "c1", "content": "1+1 = 2"}
    assert chat_messages((Message("system", "Be brief."),), ())[0]["content"] == "Be brief."


@pytest.mark.parametrize(
    ("text", "name", "arguments"),
    [
        ("What time is it?", "current_time", {}),
        ("what is 17 times 23", "calculate", {"expression": "17 times 23"}),
        ('please book {"day": "friday", "people": 2}', "book", {"day": "friday", "people": 2}),
        ("Tell me a story.", None, None),
    ],
)
def test_demo_mode_chooses_by_fixed_rules(text: str, name: str | None, arguments: object) -> None:
    call = choose_call(text, TOOLS)
    if name is None:
        assert call is None
    else:
        assert call is not None and (call.name, call.arguments) == (name, arguments)


@pytest.mark.parametrize(
    ("words", "suited"),
    [
        ("What time is it?", {"current_time"}),
        ("What is 17 times 23?", {"calculate"}),
        ("Okay, bye!", {"end_call"}),
        ("Hello, how are you?", set()),
        ("My name is Anna.", set()),
        ("Go forward ten meters.", set()),
        ("The birch canoe slid on the smooth planks.", set()),
    ],
)
def test_a_built_in_is_callable_only_when_the_words_call_for_it(
    words: str, suited: set[str]
) -> None:
    specs = [t.spec for t in (current_time_tool(""), calculate_tool(), end_call_tool())]
    assert {spec.name for spec in specs if spec.suits(words)} == suited


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (
            '{"name": "search_knowledge", "arguments": {"tool_response": "From bakery.md: 11 AM"}}'
            '\n{"name": "response", "text": "It opens at 11 AM on Sundays."}',
            "It opens at 11 AM on Sundays.",
        ),
        ('<tool_call>{"answer": "Four."}</tool_call>', "Four."),
        ('{"name": "calculate", "arguments": {"expression": "17*23"}}', ""),
        ("{not json", ""),
    ],
)
def test_the_answer_inside_call_shaped_text_is_found(text: str, words: str) -> None:
    assert words_in_call_text(text) == words
