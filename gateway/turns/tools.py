"""The turn machine's side of tool calls: what the client sees of them, and ending the call.

The llm service runs the tools (services/llm/tool_loop.py); the machine only reports them. A
reply's ``tool_call`` and ``tool_result`` events are client output of that reply, so an early
reply holds them until its turn is confirmed, like its text. Each also marks the reply's
timeline (rows ``tool_call`` and ``tool_result`` in the waterfall). A reply that ran
``end_call`` ends the session once its goodbye has been sent: ``call_ended``, then the
transport closes. Pure: the time is ``self._now``.
"""

from __future__ import annotations

import json
from typing import Any

from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.reply import Reply


class ToolSteps:
    """Mixed into the reply steps; uses their ``_current`` and ``_output``."""

    _now: float

    def _current(self, attempt: str) -> Reply | None:
        raise NotImplementedError

    def _output(self, reply: Reply, item: act.ClientOutput) -> None:
        raise NotImplementedError

    def _emit(self, action: act.Action) -> None:
        raise NotImplementedError

    def _tool_called(self, event: ev.ToolCalled) -> None:
        reply = self._current(event.attempt)
        if reply is None:
            return
        reply.timeline.mark("tool_call", self._now)
        arguments: Any
        try:
            arguments = json.loads(event.arguments_json or "{}")
        except json.JSONDecodeError:
            arguments = event.arguments_json
        fields = {
            "turn_id": reply.turn_id,
            "call_id": event.call_id,
            "name": event.name,
            "arguments": arguments,
            "side_effects": event.side_effects,
        }
        self._output(reply, act.SendEvent("tool_call", fields))

    def _tool_finished(self, event: ev.ToolFinished) -> None:
        reply = self._current(event.attempt)
        if reply is None:
            return
        reply.timeline.mark("tool_result", self._now)
        fields = {
            "turn_id": reply.turn_id,
            "call_id": event.call_id,
            "name": event.name,
            "outcome": event.outcome,
            "result": event.result,
            "duration_ms": round(event.duration_ms, 1),
        }
        self._output(reply, act.SendEvent("tool_result", fields))

    def _end_call_after(self, reply: Reply) -> None:
        """The reply's audio went out in full: the agent hangs up."""
        if reply.end_call:
            ended = {"turn_id": reply.turn_id, "reason": "end_call"}
            self._output(reply, act.SendEvent("call_ended", ended))
            self._emit(
                act.EndSession("the agent ended the call", reply.playback.ends_at(self._now))
            )
