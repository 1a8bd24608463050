"""The built-in tools, all offline: the date and time, arithmetic, ending the call.

``calculate`` walks the expression's syntax tree and allows numbers, + - * / // % ** and
parentheses only: nothing is evaluated by ``eval``, and huge powers are refused.
``end_call`` has side effects: it runs only once the turn is confirmed, and the gateway closes
the session after the goodbye that follows it has played.
"""

from __future__ import annotations

import ast
import datetime as dt
import math
import operator
import re
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from services.llm.tools.spec import Tool, ToolSpec

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 1000
END_CALL = "end_call"

# What the user's words must mention for the embedded model to be able to call each built-in
# (``ToolSpec.hints``): the time or a date; numbers with an operation; a goodbye.
TIME_WORDS = (
    r"\b(time|clock|o'clock|date|day|today|tonight|tomorrow|yesterday|hours?|minutes?|"
    r"week|weekday|month|year|noon|midnight|timezone|time zone)\b"
)
_NUMBER = (
    r"(\d|\b(zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
    r"twenty|thirty|forty|fifty|hundred|thousand|million)\b)"
)
_OPERATION = (
    r"([-+*/×÷^%=]|\b(plus|minus|times|multiplied|divided|over|percent|squared|cubed|root|"
    r"sum|add|subtract|calculate|compute|average|total|how much is)\b)"
)
ARITHMETIC = rf"({_NUMBER}.*{_OPERATION}|{_OPERATION}.*{_NUMBER})"
GOODBYE = (
    r"\b(bye|goodbye|good bye|hang up|end (the|this) call|that's all|that is all|"
    r"talk to you later|see you)\b"
)

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_WORDS = {
    r"\bplus\b": "+",
    r"\bminus\b": "-",
    r"\b(times|multiplied by)\b": "*",
    r"\bdivided by\b": "/",
    r"\bto the power of\b": "**",
    r"[x×]": "*",
    r"÷": "/",
    r"\^": "**",
}


class ExpressionError(ValueError):
    """An expression that is not plain arithmetic, or cannot be computed."""


def evaluate(expression: str) -> float | int:
    """The value of an arithmetic expression (``2 * (3 + 4)``), without ``eval``."""
    text = expression.strip().lower().replace(",", "")
    if not text or len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"expected an expression of 1 to {MAX_EXPRESSION_CHARS} characters")
    for pattern, symbol in _WORDS.items():
        text = re.sub(pattern, symbol, text)
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ExpressionError(f"{expression!r} is not an arithmetic expression") from None
    return _value(tree.body)


def _value(node: ast.expr) -> float | int:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise ExpressionError("only numbers, + - * / % ** and parentheses are allowed")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))  # type: ignore[no-any-return]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise ExpressionError(f"an exponent above {MAX_EXPONENT} is too large")
        try:
            return _BINARY[type(node.op)](left, right)  # type: ignore[no-any-return]
        except ZeroDivisionError:
            raise ExpressionError("division by zero") from None
        except OverflowError:
            raise ExpressionError("the result is too large") from None
    raise ExpressionError("only numbers, + - * / % ** and parentheses are allowed")


def spoken_number(value: float | int) -> str:
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            raise ExpressionError("the result is not a number")
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return str(value)


def time_zone(name: str) -> dt.tzinfo | None:
    """The zone named (an IANA name such as Europe/Paris); '' is the machine's local zone."""
    return ZoneInfo(name) if name else None


def now_text(zone: dt.tzinfo | None, now: dt.datetime | None = None) -> str:
    moment = (now or dt.datetime.now(dt.UTC)).astimezone(zone)
    clock = moment.strftime("%I:%M %p").lstrip("0")
    date = f"{moment.strftime('%A, %B')} {moment.day}, {moment.year}"
    return f"It is {clock} on {date} ({moment.tzname()})."


def current_time_tool(zone_name: str) -> Tool:
    zone = time_zone(zone_name)

    async def run(_arguments: dict[str, Any]) -> str:
        return now_text(zone)

    spec = ToolSpec(
        "current_time",
        # Examples in the description make the small embedded model call it (8 of 9 right on
        # a probe of time, sums and chat, against 6 of 9 without).
        "Get the current time and today's date, e.g. for 'What time is it?' or 'What day is it?'.",
        hints=TIME_WORDS,
    )
    return Tool(spec, run, timeout_s=1.0, source="builtin", speaks_result=True)


def calculate_tool() -> Tool:
    async def run(arguments: dict[str, Any]) -> str:
        expression = str(arguments.get("expression", ""))
        return f"{expression} = {spoken_number(evaluate(expression))}"

    spec = ToolSpec(
        "calculate",
        "Calculate an arithmetic expression with + - * / and parentheses, such as 17*23. "
        "Use it for any sum or calculation the user asks for.",
        {
            "type": "object",
            "properties": {
                "expression": {"type": "string", "description": "The expression, e.g. 17*23"}
            },
            "required": ["expression"],
        },
        hints=ARITHMETIC,
    )
    return Tool(spec, run, timeout_s=1.0, source="builtin")


def end_call_tool() -> Tool:
    async def run(_arguments: dict[str, Any]) -> str:
        return "The call ends after your reply: say a short goodbye."

    spec = ToolSpec(
        END_CALL,
        "Hang up: end the phone call. Use it only when the user clearly says goodbye or asks "
        "to end the call.",
        side_effects=True,
        hints=GOODBYE,
    )
    return Tool(spec, run, timeout_s=1.0, source="builtin")


BUILTIN_NAMES = ("current_time", "calculate", END_CALL, "search_knowledge")
