"""The turn machine's deadlines: one timer per kind at most, each with a serial number, so a
timer that fires after it was cancelled or replaced is recognised as stale."""

from __future__ import annotations

from gateway.turns.actions import Action, CancelTimer, SetTimer, Timer


class Timers:
    def __init__(self) -> None:
        self._active: dict[str, tuple[Timer, float]] = {}
        self._serial = 0

    def __contains__(self, kind: str) -> bool:
        return kind in self._active

    def set(self, kind: str, at: float) -> list[Action]:
        """(Re)arm the timer of ``kind`` for ``at``."""
        out = self.cancel(kind)
        self._serial += 1
        timer = Timer(kind, self._serial)
        self._active[kind] = (timer, at)
        return [*out, SetTimer(timer, at)]

    def cancel(self, kind: str) -> list[Action]:
        entry = self._active.pop(kind, None)
        return [] if entry is None else [CancelTimer(entry[0])]

    def cancel_all(self) -> list[Action]:
        return [action for kind in list(self._active) for action in self.cancel(kind)]

    def expired(self, timer: Timer) -> float | None:
        """The time the timer was due, if it is the live one of its kind (then it is spent)."""
        entry = self._active.get(timer.kind)
        if entry is None or entry[0] != timer:
            return None
        del self._active[timer.kind]
        return entry[1]
