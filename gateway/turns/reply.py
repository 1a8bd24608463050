"""One agent reply as the turn machine sees it: what it holds back, what the user has heard.

A reply is *held* while it may still be thrown away (an early reply before the user's turn is
confirmed, or any reply of the serial baseline before its audio is complete): its client output
waits in order and goes out on release. Once output goes to the client the reply keeps count
of the audio sent, so it knows how long the client will be playing and which of its text the
user has heard by a given moment. Pure: every time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.timeline import Timeline
from gateway.turns.actions import ClientOutput, SendAudio


@dataclass
class Playback:
    """The audio sent to the client, played from the moment the first of it went out."""

    sample_rate: int = 0
    samples_sent: int = 0
    first_sent_at: float = 0.0
    # (seconds into the reply's audio, the text spoken from there)
    chunks: list[tuple[float, str]] = field(default_factory=list)

    def add(self, pcm: bytes, text: str, now: float) -> None:
        if not self.samples_sent:
            self.first_sent_at = now
        if text:
            self.chunks.append((self.samples_sent / max(self.sample_rate, 1), text))
        self.samples_sent += len(pcm) // 2

    def ends_at(self, now: float) -> float:
        """When the client will have played everything sent so far."""
        if not self.samples_sent:
            return now
        return self.first_sent_at + self.samples_sent / max(self.sample_rate, 1)

    def playing(self, now: float) -> bool:
        return self.samples_sent > 0 and now < self.ends_at(now)

    def heard_text(self, now: float) -> str:
        if not self.samples_sent:
            return ""
        played_s = now - self.first_sent_at
        return " ".join(text for start_s, text in self.chunks if start_s <= played_s)


@dataclass
class Reply:
    attempt: str
    turn_id: str
    number: int
    text: str
    utterance_id: str
    timeline: Timeline
    early: bool
    serial: bool
    reply_text: str = ""
    provider: str = ""
    llm_done: bool = False
    audio_done: bool = False
    failed: bool = False
    finished: bool = False
    linked: bool = False
    # Whether the reply's audio began (an OpenAudio went out or is held): only then it ends.
    audio_opened: bool = False
    held: list[ClientOutput] | None = None
    # The reply ran end_call: the session ends once it has been heard (gateway/turns/tools.py).
    end_call: bool = False
    # Why the user's turn ended (the end-of-turn reason and score), once it has.
    ended: tuple[str, float | None] | None = None
    playback: Playback = field(default_factory=Playback)

    @property
    def is_held(self) -> bool:
        return self.held is not None

    def output(self, item: ClientOutput, now: float) -> list[ClientOutput]:
        """Client output of this reply: kept while held, else what to send now."""
        if self.held is not None:
            self.held.append(item)
            return []
        self._account(item, now)
        return [item]

    def release(self, now: float) -> list[ClientOutput]:
        """Everything held, in order; the reply sends directly from here on."""
        pending, self.held = self.held or [], None
        for item in pending:
            self._account(item, now)
        return pending

    def drop_held(self) -> None:
        """A failed reply: what it held is never sent."""
        self.held = None

    def _account(self, item: ClientOutput, now: float) -> None:
        if isinstance(item, SendAudio):
            self.playback.add(item.pcm, item.text, now)

    def playing(self, now: float) -> bool:
        return self.playback.playing(now)
