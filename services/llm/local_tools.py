"""Tool calls for the embedded model: its chat template's tool format, held to a grammar.

Qwen2.5's chat template announces tools in the system prompt (a ``# Tools`` block with each
function's JSON signature in ``<tools>``) and expects a call as ``<tool_call>{"name": ...,
"arguments": {...}}</tool_call>``; it renders earlier calls and tool results (role ``tool``)
itself. llama.cpp's own tool-call parsing does not recognise this small model's output (it
writes the JSON bare or in a code fence, so calls came back as text to be spoken), so the
service writes the tools block the template would write and constrains sampling with a GBNF
grammar: the reply is either one call, to a tool that exists, with the arguments its schema
requires, or plain spoken text (which cannot start with ``{``, ``<`` or a backtick). Whatever
the model emits therefore parses.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

from services.llm.engine import Message
from services.llm.tools.spec import ToolCall, ToolSpec

_ids = itertools.count(1)

TOOLS_BLOCK = (
    "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
    "{signatures}\n</tools>\n\nFor each function call, return a json object with function "
    "name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>\n\n'
    "Call a function only when the user's request needs it; otherwise answer in words."
)
# A call may be framed as the template asks, in a code fence, or bare: each parses. The
# grammar lets no spoken reply start with these characters, so the first one decides.
CALL_OPENERS = ("<", "`", "{")

_BASE_RULES = r"""
ws ::= [ \t\n]?
str ::= "\"" ( [^"\\\n] | "\\" ["\\/bfnrtu] )* "\""
int ::= "-"? [0-9] [0-9]*
num ::= "-"? [0-9] [0-9]* ( "." [0-9]+ )?
bool ::= "true" | "false"
json ::= str | num | bool | "null" | jarr | jobj
jarr ::= "[" ws ( json ( ws "," ws json )* )? ws "]"
jobj ::= "{" ws ( str ws ":" ws json ( ws "," ws str ws ":" ws json )* )? ws "}"
"""
TEXT_RULE = "text ::= [^<{`\\[ \\t\\n] [^<{`]*"


def system_with_tools(system: str, tools: Sequence[ToolSpec]) -> str:
    signatures = "".join("\n" + json.dumps(t.openai_shape(), ensure_ascii=False) for t in tools)
    return system + TOOLS_BLOCK.format(signatures=signatures)


def chat_messages(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The chat-completions messages, the tools block in the system prompt when offered."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system" and tools:
            out.append({"role": "system", "content": system_with_tools(m.content, tools)})
        elif m.tool_calls:
            calls = [
                {
                    "id": c.call_id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": m.content, "tool_calls": calls})
        elif m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def _literal(text: str) -> str:
    return json.dumps(text)


def _value_rule(schema: dict[str, Any], name: str, rules: list[str]) -> str:
    kind = schema.get("type")
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return "( " + " | ".join(_literal(json.dumps(v)) for v in schema["enum"]) + " )"
    if kind == "string":
        return "str"
    if kind == "integer":
        return "int"
    if kind == "number":
        return "num"
    if kind == "boolean":
        return "bool"
    if kind == "array":
        item = _value_rule(schema.get("items") or {}, name + "-i", rules)
        return f'"[" ( {item} ( ", " {item} )* )? "]"'
    if kind == "object" and schema.get("properties"):
        rules.append(f"{name} ::= {_object_rule(schema, name, rules)}")
        return name
    return "json"


def _object_rule(schema: dict[str, Any], name: str, rules: list[str]) -> str:
    properties: dict[str, Any] = schema.get("properties") or {}
    required = [k for k in schema.get("required", []) if k in properties]
    optional = [k for k in properties if k not in required]

    def pair(key: str) -> str:
        value = _value_rule(properties[key], f"{name}-{_slug(key)}", rules)
        return f"{_literal(json.dumps(key) + ': ')} {value}"

    parts = [pair(k) for k in required]
    body = ' ", " '.join(parts)
    for key in optional:
        body = f'{body} ( ", " {pair(key)} )?' if body else f"( {pair(key)} )?"
    # Optional keys after an absent optional key cannot follow a comma: good enough for calls.
    return f'"{{" {body} "}}"' if body else '"{}"'


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def grammar_for(tools: Sequence[ToolSpec]) -> str:
    """A reply that is one call to one of ``tools`` or plain text (see the module's doc)."""
    rules: list[str] = []
    alternatives = []
    for index, tool in enumerate(tools):
        rule = f"tool{index}"
        arguments = _object_rule(tool.parameters, f"{rule}-args", rules)
        opening = _literal(f'{json.dumps(tool.name)}, "arguments": ')
        rules.append(f"{rule} ::= {opening} {arguments}")
        alternatives.append(rule)
    head = [
        "root ::= call | text",
        'call ::= ( "<tool_call>\\n" | "```json\\n" | "" ) "{\\"name\\": " ( '
        + " | ".join(alternatives)
        + ' ) "}" ( "\\n</tool_call>" | "\\n```" | "" )',
        TEXT_RULE,
    ]
    return "\n".join(head + rules) + _BASE_RULES


def looks_like_call(text: str) -> bool:
    return text.lstrip().startswith(CALL_OPENERS)


def parse_call(text: str, tools: Sequence[ToolSpec]) -> ToolCall | None:
    """The call in a reply the grammar produced (None if it is not one)."""
    body = text.strip()
    for prefix in ("<tool_call>", "```json", "```"):
        body = body.removeprefix(prefix)
    for suffix in ("</tool_call>", "```"):
        body = body.strip().removesuffix(suffix)
    try:
        data = json.loads(body.strip())
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict) or data.get("name") not in {t.name for t in tools}:
        return None
    arguments = data.get("arguments") or {}
    if not isinstance(arguments, dict):
        return None
    return ToolCall(f"call-{next(_ids)}", str(data["name"]), arguments)


SPOKEN_KEYS = ("text", "response", "answer", "content", "message", "reply")


def words_in_call_text(text: str) -> str:
    """The answer a small model sometimes wraps in call-shaped JSON where words were due
    (``{"name": "response", "text": "It opens at 11."}``): the last string under a key such as
    ``text`` or ``answer``, searched through every JSON object in ``text``; "" when none."""
    decoder = json.JSONDecoder()
    found: list[str] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in SPOKEN_KEYS and isinstance(item, str) and item.strip():
                    found.append(item.strip())
                else:
                    collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    index = 0
    while (start := text.find("{", index)) != -1:
        try:
            value, index = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            index = start + 1
            continue
        collect(value)
    return found[-1] if found else ""
