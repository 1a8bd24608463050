"""A turn's latency waterfall: named moments measured once, shown as logs, events and spans."""

from __future__ import annotations

# The order the moments of a turn happen in, with the names users of the old system know.
STAGES = (
    "audio_received",
    "stt_complete",
    "llm_start",
    "llm_first_token",
    "tts_start",
    "first_audio_sent",
    "pipeline_complete",
)


class Timeline:
    """Moments on the monotonic clock, relative to ``audio_received`` (the end of user speech).

    Pure: every moment is given. The first mark of a name is kept.
    """

    def __init__(self, origin: float) -> None:
        self._origin = origin
        self.marks: dict[str, float] = {"audio_received": origin}

    def mark(self, name: str, at: float) -> None:
        if name not in self.marks:
            self.marks[name] = at

    def waterfall_ms(self) -> dict[str, float]:
        """Each moment's offset from the end of speech in ms, in turn order, plus the total."""
        ordered = sorted(self.marks.items(), key=lambda item: item[1])
        waterfall = {name: round((at - self._origin) * 1000, 1) for name, at in ordered}
        if "first_audio_sent" in waterfall:
            waterfall["total"] = waterfall["first_audio_sent"]
        return waterfall

    def summary(self, turn_number: int) -> str:
        lines = [f"=== Latency Summary (turn {turn_number}) ==="]
        previous = 0.0
        for name, at in sorted(self.marks.items(), key=lambda item: item[1]):
            total = (at - self._origin) * 1000
            lines.append(f"  {name}: +{total - previous:.1f}ms (total: {total:.1f}ms)")
            previous = total
        if "first_audio_sent" in self.marks:
            latency = (self.marks["first_audio_sent"] - self._origin) * 1000
            lines.append(f"  TOTAL LATENCY: {latency:.1f}ms")
        else:
            lines.append("  TOTAL LATENCY: no audio")
        return "\n".join(lines)
