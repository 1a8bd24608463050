"""The client protocol: JSON control messages in, JSON events out (see docs/protocol.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.turns.policy import END_OF_TURN_RULES
from voice.opus import OPUS_RATES

MIN_RATE, MAX_RATE = 8000, 48000
VALID_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


class ProtocolError(ValueError):
    """A client message that cannot be used. ``code`` goes into the error event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Start:
    sample_rate: int | None = None
    output_sample_rate: int | None = None
    voice: str = ""
    language: str = ""
    # "streaming" (the default) or "serial": the whole transcript, then the whole reply, then
    # all of its audio, as voice pipelines worked before streaming. For comparisons.
    pipeline: str = ""
    # Start the LLM on the transcript decoded at the user's pause (None: the gateway's setting).
    early_thinking: bool | None = None
    # "pcm16" (the default) or "opus": one raw Opus packet per binary frame, both ways.
    codec: str = ""
    # How the user's turn ends: "silence" or "punctuation" ("": the gateway's setting).
    end_of_turn: str = ""


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Played:
    """How much of a turn's agent audio the client has played (``ms``), as it plays."""

    turn_id: str
    ms: float


ClientMessage = Start | Stop | Played
# The most a ``played`` message may say: a day of audio.
MAX_PLAYED_MS = 86_400_000


def _played(data: dict[str, Any]) -> Played:
    turn_id, ms = data.get("turn_id"), data.get("ms")
    if not isinstance(turn_id, str) or not turn_id or len(turn_id) > 128:
        raise ProtocolError("invalid_message", "played needs turn_id, a non-empty string")
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not 0 <= ms <= MAX_PLAYED_MS:
        raise ProtocolError(
            "invalid_message",
            f"played needs ms, a number of milliseconds from 0 to {MAX_PLAYED_MS}",
        )
    return Played(turn_id, float(ms))


def _rate(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value not in VALID_RATES:
        raise ProtocolError(
            "invalid_sample_rate",
            f"{field} must be one of {', '.join(str(r) for r in VALID_RATES)}",
        )
    return value


def _text(value: Any, field: str, limit: int = 64) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise ProtocolError(
            "invalid_message", f"{field} must be a string of at most {limit} characters"
        )
    return value


PIPELINES = ("streaming", "serial")
CODECS = ("pcm16", "opus")


def _choice(value: Any, field: str, choices: tuple[str, ...]) -> str:
    if value is None:
        return ""
    if value not in choices:
        raise ProtocolError("invalid_message", f"{field} must be one of {', '.join(choices)}")
    return str(value)


def _flag(value: Any, field: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ProtocolError("invalid_message", f"{field} must be true or false")


def _codec(data: dict[str, Any]) -> str:
    codec = _choice(data.get("codec"), "codec", CODECS)
    rate = data.get("output_sample_rate")
    if codec == "opus" and rate is not None and rate not in OPUS_RATES:
        raise ProtocolError(
            "invalid_sample_rate",
            f"with Opus, output_sample_rate must be one of {', '.join(map(str, OPUS_RATES))}",
        )
    return codec


def parse_client_message(raw: str) -> ClientMessage:
    try:
        data = json.loads(raw)
    # ValueError covers JSONDecodeError and integers too long to convert.
    except (ValueError, RecursionError) as error:
        raise ProtocolError("invalid_json", f"text frames must be JSON objects: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_json", "text frames must be JSON objects")
    kind = data.get("type")
    if kind == "start":
        return Start(
            sample_rate=_rate(data.get("sample_rate"), "sample_rate"),
            output_sample_rate=_rate(data.get("output_sample_rate"), "output_sample_rate"),
            voice=_text(data.get("voice"), "voice"),
            language=_text(data.get("language"), "language", 16),
            pipeline=_choice(data.get("pipeline"), "pipeline", PIPELINES),
            early_thinking=_flag(data.get("early_thinking"), "early_thinking"),
            codec=_codec(data),
            end_of_turn=_choice(data.get("end_of_turn"), "end_of_turn", END_OF_TURN_RULES),
        )
    if kind == "stop":
        return Stop()
    if kind == "played":
        return _played(data)
    raise ProtocolError(
        "unknown_type", f"unknown message type {kind!r}; expected start, stop or played"
    )


def event(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))
