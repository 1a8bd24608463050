"""What the turn machine asks for: client output, stage requests, timers, and what to record.

The driver carries the actions out in the order they come. Client output is separate from the
rest so a transport (the browser's WebSocket, a phone media stream) can encode it its own way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Timer:
    """A named deadline. ``serial`` tells two timers of the same kind apart, so one that fires
    after it was cancelled or replaced is recognised as stale."""

    kind: str
    serial: int


# --------------------------------------------------------------------------- to the client


@dataclass(frozen=True)
class SendEvent:
    """A JSON event for the client (``type`` plus fields, docs/protocol.md)."""

    type: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class OpenAudio:
    """A reply's audio begins, at this rate: the transport prepares its encoder."""

    sample_rate: int


@dataclass(frozen=True)
class SendAudio:
    pcm: bytes
    # The text this audio starts speaking, if a chunk starts here (for what the user heard).
    text: str = ""


@dataclass(frozen=True)
class CloseAudio:
    """A reply's audio is over: the transport flushes its encoder."""


# --------------------------------------------------------------------------- to the stages


@dataclass(frozen=True)
class AskLlm:
    attempt: str
    text: str
    # Ask for the text's end-of-turn score before the reply (an ``EndScored`` event).
    score_end: bool = False
    # An early reply (it may be discarded): tools with side effects wait for ConfirmLlm.
    early: bool = False


@dataclass(frozen=True)
class ConfirmLlm:
    """The early reply is the answer to the user's turn after all (side effects may run)."""

    attempt: str


@dataclass(frozen=True)
class EndSession:
    """Close the session at ``at``, when the client has played the goodbye (the agent hung
    up: the ``call_ended`` event went out first)."""

    reason: str
    at: float


@dataclass(frozen=True)
class CancelLlm:
    attempt: str
    # What the user heard of the reply: the LLM keeps only that in its history.
    heard_text: str
    # An early reply the user talked past: the LLM forgets the turn altogether.
    discard: bool


@dataclass(frozen=True)
class Speak:
    attempt: str
    text: str


@dataclass(frozen=True)
class FlushSpeech:
    attempt: str


@dataclass(frozen=True)
class CancelSpeech:
    attempt: str


@dataclass(frozen=True)
class LinkUtterance:
    """Tell stt which reply answers the utterance, so its span joins the reply's trace."""

    attempt: str
    utterance_id: str


# --------------------------------------------------------------------------- timers


@dataclass(frozen=True)
class SetTimer:
    timer: Timer
    at: float


@dataclass(frozen=True)
class CancelTimer:
    timer: Timer


# --------------------------------------------------------------------------- what to record


@dataclass(frozen=True)
class ReplyStarted:
    """A reply begins (its span opens at ``origin``, the end of the user's speech)."""

    attempt: str
    turn_id: str
    number: int
    early: bool
    serial: bool
    origin: float


@dataclass(frozen=True)
class ReplyFinished:
    """A reply is over: ``ending`` is complete, interrupted, discarded or failed."""

    attempt: str
    turn_id: str
    number: int
    ending: str
    marks: dict[str, float]
    provider: str = ""
    # Why the user's turn ended: the end-of-turn rule's reason ("silence", "complete") and score.
    end_reason: str = ""
    end_score: float | None = None


@dataclass(frozen=True)
class StateChanged:
    old: str
    new: str


@dataclass(frozen=True)
class Count:
    """One more of a counter: ``turns`` (by outcome), ``early_starts`` (by result),
    ``interruptions``."""

    metric: str
    label: str = ""


@dataclass(frozen=True)
class ObserveBargeIn:
    """The barge-in was decided at ``decided_at``: observed once the actions before it ran."""

    decided_at: float


@dataclass(frozen=True)
class BargeInDecided:
    """A barge-in step for the reply's span: ``ducked``, ``resumed:<why>`` or ``interrupted``."""

    attempt: str
    decision: str
    at: float


@dataclass(frozen=True)
class Log:
    level: str
    message: str


Action = (
    SendEvent
    | OpenAudio
    | SendAudio
    | CloseAudio
    | AskLlm
    | ConfirmLlm
    | CancelLlm
    | Speak
    | FlushSpeech
    | CancelSpeech
    | LinkUtterance
    | SetTimer
    | CancelTimer
    | ReplyStarted
    | ReplyFinished
    | StateChanged
    | Count
    | ObserveBargeIn
    | BargeInDecided
    | Log
    | EndSession
)
ClientOutput = SendEvent | OpenAudio | SendAudio | CloseAudio
