"""The transport interface a session talks through (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.turns.actions import ClientOutput


@dataclass(frozen=True)
class StartRequest:
    """What a client asked for before its audio. The transport's own fields (rates, codec)
    take effect only once the session accepts the request (``Transport.configure``)."""

    sample_rate: int | None = None
    output_sample_rate: int | None = None
    codec: str = ""
    voice: str = ""
    language: str = ""
    pipeline: str = ""
    early_thinking: bool | None = None
    end_of_turn: str = ""


@dataclass(frozen=True)
class ClientAudio:
    """PCM16 mono at the transport's input rate, as it arrived."""

    pcm: bytes
    at: float


@dataclass(frozen=True)
class ClientStop:
    pass


@dataclass(frozen=True)
class ClientDigits:
    """Keys pressed on a phone (``0``-``9``, ``*``, ``#``), in order, gathered at ``at``."""

    digits: str
    at: float


@dataclass(frozen=True)
class ClientPlayed:
    """The client's account of its playback (``played``): ``ms`` of the turn's agent audio had
    played when the report arrived, ``at``."""

    turn_id: str
    ms: float
    at: float


ClientInput = StartRequest | ClientAudio | ClientStop | ClientDigits | ClientPlayed


class Transport(Protocol):
    # PCM16 rates: what ``ClientAudio`` carries, and what the agent's audio is made at.
    input_rate: int
    output_rate: int
    codec: str

    async def receive(self) -> ClientInput | None:
        """The client's next input; None once it is gone (closed, idle, broken)."""
        ...

    def configure(self, request: StartRequest) -> None:
        """Apply the transport's part of an accepted start (rates, codec)."""
        ...

    async def send(self, output: ClientOutput) -> None:
        """An event or the agent's audio (the transport encodes it its own way)."""
        ...

    async def send_event(self, kind: str, **fields: Any) -> None: ...

    def heard_text(self, estimate: str) -> str:
        """What the user heard of the reply whose audio goes out now, by the client's own
        account of its playback (a phone's marks). ``estimate`` is the turn machine's, from the
        audio sent and the clock; a transport that knows no better returns it."""
        ...

    async def hang_up(self, *, at: float, reason: str) -> None:
        """Close once the client has played what it was sent: at ``at`` (``time.perf_counter``)
        by the turn machine's reckoning; a transport that hears back from its client (a phone's
        marks) waits for that instead."""
        ...

    async def close(self, *, code: int, reason: str) -> None: ...
