"""Print a turn's latency waterfall from Jaeger, for people who live in the terminal.

``python -m tools.waterfall TRACE_ID [--jaeger http://localhost:16686]`` reads the trace from
Jaeger's HTTP query API (``/api/traces/{id}``) and draws each span as a bar on one time axis,
followed by the turn's events (audio_received, stt_complete, llm_first_token, ...). The trace
id is in every ``voice.turn`` span, and Jaeger's search finds turns by ``voice.session_id``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass
from typing import Any

import aiohttp

WIDTH = 48


@dataclass(frozen=True)
class SpanRow:
    span_id: str
    parent_id: str
    service: str
    name: str
    start_us: int
    duration_us: int
    events: tuple[tuple[str, int], ...]


def parse_jaeger_trace(payload: dict[str, Any]) -> list[SpanRow]:
    """The spans of the first trace in a Jaeger ``/api/traces/{id}`` answer."""
    data = payload.get("data") or []
    if not data:
        raise ValueError("Jaeger returned no trace with that id")
    trace = data[0]
    services = {pid: p.get("serviceName", "?") for pid, p in trace.get("processes", {}).items()}
    rows = []
    for span in trace.get("spans", []):
        parents = [
            r["spanID"] for r in span.get("references", []) if r.get("refType") == "CHILD_OF"
        ]
        events = []
        for log in span.get("logs", []):
            name = next((f["value"] for f in log.get("fields", []) if f.get("key") == "event"), "")
            if name:
                events.append((str(name), int(log["timestamp"])))
        rows.append(
            SpanRow(
                span_id=span["spanID"],
                parent_id=parents[0] if parents else "",
                service=services.get(span.get("processID", ""), "?"),
                name=span["operationName"],
                start_us=int(span["startTime"]),
                duration_us=int(span["duration"]),
                events=tuple(sorted(events, key=lambda e: e[1])),
            )
        )
    return rows


def _ordered(rows: list[SpanRow]) -> list[tuple[int, SpanRow]]:
    """Depth-first, children after their parent, siblings by start time."""
    children: dict[str, list[SpanRow]] = {}
    ids = {row.span_id for row in rows}
    for row in rows:
        children.setdefault(row.parent_id if row.parent_id in ids else "", []).append(row)
    out: list[tuple[int, SpanRow]] = []

    def walk(parent: str, depth: int) -> None:
        for row in sorted(children.get(parent, []), key=lambda r: r.start_us):
            out.append((depth, row))
            walk(row.span_id, depth + 1)

    walk("", 0)
    return out


def render(rows: list[SpanRow]) -> str:
    if not rows:
        return "no spans"
    origin = min(r.start_us for r in rows)
    end = max(r.start_us + r.duration_us for r in rows)
    scale = WIDTH / max(end - origin, 1)
    lines = [f"{'offset':>8}  {'service':<8} {'span':<30} {'':<{WIDTH}}  duration"]
    for depth, row in _ordered(rows):
        left = int((row.start_us - origin) * scale)
        width = max(1, int(row.duration_us * scale))
        bar = " " * left + "█" * min(width, WIDTH - left)
        name = ("  " * depth + row.name)[:30]
        lines.append(
            f"{(row.start_us - origin) / 1000:7.0f}ms  {row.service:<8} {name:<30} "
            f"{bar:<{WIDTH}}  {row.duration_us / 1000:.0f} ms"
        )
    turn = next((r for r in rows if r.name == "voice.turn"), None)
    if turn is not None and turn.events:
        lines.append("")
        lines.append("turn events (ms after the end of user speech):")
        first = turn.events[0][1]
        lines.extend(f"  {name:<20}{(at - first) / 1000:8.1f}" for name, at in turn.events)
    return "\n".join(lines)


async def fetch_trace(jaeger: str, trace_id: str) -> dict[str, Any]:
    url = f"{jaeger.rstrip('/')}/api/traces/{trace_id}"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        if response.status == 404:
            raise ValueError(f"Jaeger has no trace {trace_id}")
        response.raise_for_status()
        payload: dict[str, Any] = await response.json()
        return payload


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print a turn's waterfall from Jaeger.")
    parser.add_argument("trace_id", help="the trace id of a voice.turn span")
    parser.add_argument("--jaeger", default="http://localhost:16686", help="Jaeger query URL")
    args = parser.parse_args(argv)
    try:
        rows = parse_jaeger_trace(asyncio.run(fetch_trace(args.jaeger, args.trace_id)))
    except (ValueError, aiohttp.ClientError) as error:
        print(f"waterfall: {error}", file=sys.stderr)
        return 1
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
