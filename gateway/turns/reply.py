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
from gateway.turns.actions import ClientOutput


@dataclass
class Playback:
    """The audio sent to the client and where its playback is by a given moment.

    By the clock: the client plays what it was sent as it comes, so the audio still ahead of it
    is what was sent minus what the time since has played (less any pause: a barge-in's duck
    at gain 0). By the client's own account when it gives one (``report``: the ``played``
    message), which then wins.
    """

    sample_rate: int = 0
    samples_sent: int = 0
    first_sent_at: float = 0.0
    # (seconds into the reply's audio, the text spoken from there)
    chunks: list[tuple[float, str]] = field(default_factory=list)
    # When all the audio sent will have played, by the clock.
    end_at: float = 0.0
    paused_at: float | None = None
    # The client's last report: (seconds played, when it came).
    reported: tuple[float, float] | None = None

    @property
    def sent_s(self) -> float:
        return self.samples_sent / max(self.sample_rate, 1)

    def add(self, pcm: bytes, text: str, now: float) -> None:
        if not self.samples_sent:
            self.first_sent_at = now
        if text:
            self.chunks.append((self.sent_s, text))
        start = max(self.end_at, now if self.paused_at is None else self.paused_at)
        self.samples_sent += len(pcm) // 2
        self.end_at = start + (len(pcm) // 2) / max(self.sample_rate, 1)

    def ends_at(self, now: float) -> float:
        """When the client will have played everything sent so far."""
        if not self.samples_sent:
            return now
        if self.paused_at is not None:
            return now + max(self.end_at - self.paused_at, 0.0)
        return self.end_at

    def played_s(self, now: float) -> float:
        """How far into the reply's audio the client is."""
        if not self.samples_sent:
            return 0.0
        if self.reported is not None:
            played, at = self.reported
            running = 0.0 if self.paused_at is not None else max(now - at, 0.0)
            return min(played + running, self.sent_s)
        return max(self.sent_s - max(self.ends_at(now) - now, 0.0), 0.0)

    def pause(self, now: float, gain: float) -> None:
        """A barge-in ducked the reply: at gain 0 the client pauses its playback."""
        if gain <= 0 and self.paused_at is None:
            self.paused_at = now

    def resume(self, now: float) -> None:
        if self.paused_at is not None:
            self.end_at = now + max(self.end_at - self.paused_at, 0.0)
            self.paused_at = None

    def report(self, played_s: float, now: float) -> None:
        self.reported = (min(max(played_s, 0.0), self.sent_s), now)

    def playing(self, now: float) -> bool:
        return self.samples_sent > 0 and now < self.ends_at(now)

    def heard_text(self, now: float) -> str:
        if not self.samples_sent:
            return ""
        played_s = self.played_s(now)
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
    # Client output paced behind the client's playback (gateway/turns/playout.py).
    paced: list[ClientOutput] = field(default_factory=list)
    # A barge-in is being decided: nothing more goes out until it resumes.
    ducked: bool = False
    # The agent's own check-in (gateway/turns/check_in.py): the llm knows nothing of it.
    check_in: bool = False

    @property
    def is_held(self) -> bool:
        return self.held is not None

    def release(self) -> list[ClientOutput]:
        """Everything held, in order; the reply sends directly from here on."""
        pending, self.held = self.held or [], None
        return pending

    def drop_held(self) -> None:
        """A failed reply: what it held is never sent."""
        self.held = None
        self.paced.clear()

    def playing(self, now: float) -> bool:
        return self.playback.playing(now)
