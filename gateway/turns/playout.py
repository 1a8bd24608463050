"""Paced output: a reply's audio goes to the client no more than a lead ahead of its playback.

The first audio goes at once; what comes faster than real time waits in the reply (in order,
with the events behind it) and a pacing timer (``playout``) releases it as the client's lead
runs down. So a barge-in can hold the rest (the client plays out only its lead, ducked) and
resume it, and an interruption drops it unsent. Pure: the time is ``self._now``.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.turns import actions as act
from gateway.turns.reply import Reply

PLAYOUT = "playout"
# Audio waits in pieces of this length, so the client's lead stays close to the setting.
PIECE_S = 0.1


@dataclass(frozen=True)
class Playout:
    """``lead_s``: how far ahead of playback audio is sent (None: all at once, as made)."""

    lead_s: float | None = None


def pieces(item: act.SendAudio, sample_rate: int) -> list[act.SendAudio]:
    size = max(int(sample_rate * PIECE_S), 1) * 2
    pcm = item.pcm
    if len(pcm) <= size:
        return [item]
    chunks = [pcm[i : i + size] for i in range(0, len(pcm), size)]
    return [act.SendAudio(chunk, item.text if i == 0 else "") for i, chunk in enumerate(chunks)]


class PlayoutSteps:
    """Mixed into the reply steps; uses their ``_sent`` and ``_maybe_finish``."""

    reply: Reply | None
    _now: float

    def _playout(self) -> Playout:
        raise NotImplementedError

    def _sent(self, reply: Reply, item: act.ClientOutput) -> None:
        raise NotImplementedError

    def _maybe_finish(self, reply: Reply) -> None:
        raise NotImplementedError

    def _set_timer(self, kind: str, at: float) -> None:
        raise NotImplementedError

    def _cancel_timer(self, kind: str) -> None:
        raise NotImplementedError

    def _output(self, reply: Reply, item: act.ClientOutput) -> None:
        """Client output of the reply: held while the reply is, else sent or paced."""
        if reply.held is not None:
            reply.held.append(item)
            return
        lead = self._playout().lead_s
        if lead is None:
            self._sent(reply, item)
            return
        if isinstance(item, act.SendAudio):
            reply.paced.extend(pieces(item, reply.playback.sample_rate))
        else:
            reply.paced.append(item)
        self._release_paced(reply, lead)

    def _release_paced(self, reply: Reply, lead: float) -> None:
        """Send what the lead allows now; arm the timer for the rest."""
        if reply.ducked:
            return
        while reply.paced:
            head = reply.paced[0]
            if isinstance(head, act.SendAudio):
                ahead = reply.playback.ends_at(self._now) - self._now
                if reply.playback.samples_sent and ahead > lead:
                    self._set_timer(PLAYOUT, reply.playback.ends_at(self._now) - lead)
                    return
            reply.paced.pop(0)
            self._sent(reply, head)
        self._cancel_timer(PLAYOUT)

    def _pace(self, reply: Reply) -> None:
        """The pacing timer, or a resume: release what is due, and end the reply if it is all
        out."""
        lead = self._playout().lead_s
        if lead is None or reply.finished:
            return
        self._release_paced(reply, lead)
        if not reply.paced:
            self._maybe_finish(reply)

    def _drop_paced(self, reply: Reply) -> None:
        reply.paced.clear()
        self._cancel_timer(PLAYOUT)
