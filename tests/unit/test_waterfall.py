"""The Jaeger waterfall command, against a local server speaking Jaeger's query API."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from tools.waterfall import fetch_trace, parse_jaeger_trace, render

pytestmark = pytest.mark.unit

T0 = 1_700_000_000_000_000  # microseconds


def jaeger_answer() -> dict[str, Any]:
    def span(
        sid: str,
        parent: str,
        pid: str,
        name: str,
        start: int,
        duration: int,
        events: tuple[tuple[str, int], ...] = (),
    ) -> dict[str, Any]:
        return {
            "traceID": "abc",
            "spanID": sid,
            "operationName": name,
            "references": [{"refType": "CHILD_OF", "traceID": "abc", "spanID": parent}]
            if parent
            else [],
            "startTime": T0 + start,
            "duration": duration,
            "processID": pid,
            "logs": [
                {"timestamp": T0 + at, "fields": [{"key": "event", "type": "string", "value": n}]}
                for n, at in events
            ],
        }

    return {
        "data": [
            {
                "traceID": "abc",
                "spans": [
                    span(
                        "t",
                        "",
                        "p1",
                        "voice.turn",
                        0,
                        1_500_000,
                        (
                            ("audio_received", 0),
                            ("llm_start", 380_000),
                            ("first_audio_sent", 900_000),
                        ),
                    ),
                    span("l", "t", "p3", "llm.generate", 390_000, 800_000),
                    span("s", "t", "p2", "stt.utterance", -1_000_000, 1_480_000),
                ],
                "processes": {
                    "p1": {"serviceName": "gateway"},
                    "p2": {"serviceName": "stt"},
                    "p3": {"serviceName": "llm"},
                },
            }
        ]
    }


def test_spans_are_drawn_under_their_parent_on_one_time_axis() -> None:
    rows = parse_jaeger_trace(jaeger_answer())
    text = render(rows)
    lines = text.splitlines()
    names = [line.split()[2] for line in lines[1:4]]
    assert names == ["voice.turn", "stt.utterance", "llm.generate"]
    assert lines[2].startswith("      0ms")  # stt started first: it is the time origin
    assert "turn events" in text
    assert "llm_start" in text and "380.0" in text and "900.0" in text


def test_an_empty_answer_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no trace"):
        parse_jaeger_trace({"data": []})


async def test_it_reads_the_trace_from_the_query_api(unused_tcp_port: int) -> None:
    async def trace(request: web.Request) -> web.Response:
        if request.match_info["trace_id"] != "abc":
            return web.json_response({"data": None}, status=404)
        return web.json_response(jaeger_answer())

    app = web.Application()
    app.router.add_get("/api/traces/{trace_id}", trace)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    try:
        payload = await fetch_trace(f"http://127.0.0.1:{unused_tcp_port}", "abc")
        assert parse_jaeger_trace(payload)[0].name == "voice.turn"
        with pytest.raises(ValueError, match="no trace"):
            await fetch_trace(f"http://127.0.0.1:{unused_tcp_port}", "missing")
    finally:
        await runner.cleanup()
