"""What the turn machine is told: speech, transcripts, stage output, timers, stage health.

Every time is on the session's monotonic clock (seconds, ``time.perf_counter`` at the edge).
An ``attempt`` is one reply's id at the stages (``{session}-a{n}``): a response that carries an
attempt other than the current reply's is stale and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.turns.actions import Timer


@dataclass(frozen=True)
class SpeechStarted:
    utterance_id: str
    # True when the user speaks again after a pause within the same turn.
    resumed: bool = False


@dataclass(frozen=True)
class SpeechPaused:
    utterance_id: str


@dataclass(frozen=True)
class UserTurnEnded:
    """stt's end of turn: enough silence after the speech. ``decided_at``: when the audio
    that decided it reached the gateway."""

    utterance_id: str
    decided_at: float


@dataclass(frozen=True)
class TranscriptReceived:
    utterance_id: str
    text: str
    final: bool
    # The decode made at the user's first pause (the text early thinking starts on).
    at_pause: bool
    # How long the utterance's speech lasted, and when its last speech reached the gateway.
    duration_s: float
    speech_end_at: float


@dataclass(frozen=True)
class ReplyText:
    attempt: str
    text: str


@dataclass(frozen=True)
class EndScored:
    """The language model's score of how complete the reply's text reads as a turn."""

    attempt: str
    p_end: float
    # False when the llm service could not score (no model that can): punctuation decides.
    available: bool = True


@dataclass(frozen=True)
class ReplyDone:
    attempt: str
    provider: str = ""
    error: str = ""
    # The reply ran the end_call tool (gateway/turns/tools.py).
    end_call: bool = False


@dataclass(frozen=True)
class ToolCalled:
    """The llm service started a tool for the reply."""

    attempt: str
    call_id: str
    name: str
    arguments_json: str
    side_effects: bool = False


@dataclass(frozen=True)
class ToolFinished:
    """A tool of the reply finished: ``outcome`` ok, error, timeout or not_found."""

    attempt: str
    call_id: str
    name: str
    outcome: str
    result: str
    duration_ms: float


@dataclass(frozen=True)
class SpeechAudioStarted:
    attempt: str
    sample_rate: int


@dataclass(frozen=True)
class SpeechAudio:
    attempt: str
    pcm: bytes
    # The text this audio speaks (set on a chunk's first audio), for what the user heard.
    text: str = ""


@dataclass(frozen=True)
class SpeechAudioEnded:
    attempt: str
    error: str = ""


@dataclass(frozen=True)
class TimerExpired:
    timer: Timer


@dataclass(frozen=True)
class StageDown:
    stage: str


@dataclass(frozen=True)
class StageUp:
    stage: str


@dataclass(frozen=True)
class SpeechForgotten:
    """The stt stream was reopened: what it said about speech in progress no longer holds."""


@dataclass(frozen=True)
class PlaybackReported:
    """The client's account of its playback: ``played_s`` of the turn's agent audio played."""

    turn_id: str
    played_s: float


@dataclass(frozen=True)
class SessionClosed:
    pass


@dataclass(frozen=True)
class ReplyBroke:
    """Carrying out the current reply's actions failed (a bug, an encoder error)."""


Event = (
    SpeechStarted
    | SpeechPaused
    | UserTurnEnded
    | TranscriptReceived
    | ReplyText
    | EndScored
    | ReplyDone
    | ToolCalled
    | ToolFinished
    | SpeechAudioStarted
    | SpeechAudio
    | SpeechAudioEnded
    | TimerExpired
    | StageDown
    | StageUp
    | SpeechForgotten
    | PlaybackReported
    | SessionClosed
    | ReplyBroke
)
