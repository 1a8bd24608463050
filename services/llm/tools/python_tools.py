"""A Python function as a tool: its JSON schema from the signature and the docstring.

    def book_table(day: str, people: int = 2) -> str:
        '''Book a table at the restaurant.

        Args:
            day: The day of the booking, e.g. "Friday".
            people: How many people.
        '''

The first paragraph of the docstring is the tool's description; ``name: text`` lines under an
``Args:`` (or ``Parameters:``) heading describe the parameters. Parameters without a default are
required. Supported types: str, int, float, bool, ``Literal[...]`` of strings (an enum), and
``list[...]`` of those. A function may be sync (it runs on a worker thread) or async; what it
returns is given to the model as text (a dict or list as JSON).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import re
import typing
from collections.abc import Callable
from typing import Any

from services.llm.tools.spec import DEFAULT_TIMEOUT_S, Tool, ToolSpec

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


def json_type(annotation: Any, where: str) -> dict[str, Any]:
    """The JSON schema of one parameter's annotation."""
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        values = typing.get_args(annotation)
        if all(isinstance(value, str) for value in values):
            return {"type": "string", "enum": list(values)}
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        return {"type": "array", "items": json_type(item, where)}
    raise TypeError(f"{where}: unsupported parameter type {annotation!r} (use str, int, ...)")


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The description (first paragraph) and each parameter's text from an Args section."""
    doc = inspect.cleandoc(doc or "")
    description = doc.split("\n\n", 1)[0].replace("\n", " ").strip()
    params: dict[str, str] = {}
    section = re.split(r"^\s*(?:Args|Arguments|Parameters):\s*$", doc, maxsplit=1, flags=re.M)
    if len(section) == 2:
        current = ""
        for line in section[1].splitlines():
            match = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?\s*:\s*(.*)$", line)
            if match:
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif line.strip() and current and line.startswith((" ", "\t")):
                params[current] = f"{params[current]} {line.strip()}".strip()
            elif line.strip():
                break
    return description, params


def schema_of(function: Callable[..., Any]) -> ToolSpec:
    """The tool the model sees for ``function`` (no side effects: ``from_function`` says)."""
    name = function.__name__
    description, texts = parse_docstring(function.__doc__ or "")
    if not description:
        raise ValueError(f"tool {name}: the function needs a docstring (the model reads it)")
    hints = typing.get_type_hints(function)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        where = f"tool {name}, parameter {parameter.name}"
        if parameter.name not in hints:
            raise TypeError(f"{where}: needs a type annotation")
        schema = json_type(hints[parameter.name], where)
        if parameter.name in texts:
            schema["description"] = texts[parameter.name]
        properties[parameter.name] = schema
        if parameter.default is parameter.empty:
            required.append(parameter.name)
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    return ToolSpec(name, description, parameters)


def result_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def from_function(
    function: Callable[..., Any],
    *,
    side_effects: bool = False,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    name: str = "",
) -> Tool:
    spec = schema_of(function)
    spec = ToolSpec(name or spec.name, spec.description, spec.parameters, side_effects)

    async def run(arguments: dict[str, Any]) -> str:
        if inspect.iscoroutinefunction(function):
            return result_text(await function(**arguments))
        return result_text(await asyncio.to_thread(function, **arguments))

    return Tool(spec, run, timeout_s, source="python")


def import_function(reference: str) -> Callable[..., Any]:
    """``package.module:function`` imported (the agent file names functions this way)."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{reference!r}: expected 'module:function'")
    module = importlib.import_module(module_name)
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ValueError(f"{reference!r}: {module_name} has no function {attribute}")
    return typing.cast(Callable[..., Any], function)
