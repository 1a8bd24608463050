"""Barge-in like a person: duck at once, then decide by what was said as well as how long.

Speech that starts over the agent ducks its voice at once (the client gets ``ducked``) and holds
the rest of the reply's audio in the machine (gateway/turns/playout.py). Then the overlap is
judged: words that are not a backchannel interrupt as soon as they are recognised; a backchannel
("mm-hm", "yeah"), a sound without words, or the agent's own words coming back (echo) resume the
reply where it stopped (``resumed``); speech that goes on past ``max_backchannel_s`` interrupts
without waiting for words. Pure: the time is ``self._now``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.turns import actions as act
from gateway.turns import events as ev
from gateway.turns.reply import Reply
from voice.text import normalize_transcript

BARGE_IN = "barge_in"
# The overlap went quiet without a transcript that decides it: after this, it was noise.
OVERLAP_QUIET = "overlap_quiet"

DEFAULT_BACKCHANNELS = (
    "mm-hm", "mhm", "mm", "hmm", "uh-huh", "uh huh", "yeah", "yes", "yep", "yup", "no", "nope",
    "okay", "ok", "right", "sure", "alright", "all right", "i see", "got it", "cool", "great",
    "oh", "ah", "aha", "wow", "huh", "haha", "ha",
)  # fmt: skip
DEFAULT_INTERRUPTS = ("wait", "stop", "hold on", "hang on", "sorry", "excuse me", "but")

INTERRUPT, BACKCHANNEL, ECHO = "interrupt", "backchannel", "echo"


def words_of(phrases: tuple[str, ...] | list[str]) -> frozenset[str]:
    return frozenset(word for phrase in phrases for word in normalize_transcript(phrase).split())


def phrases_of(phrases: tuple[str, ...] | list[str]) -> frozenset[str]:
    return frozenset(normalize_transcript(p) for p in phrases if normalize_transcript(p))


@dataclass(frozen=True)
class BargeIn:
    """When speech over the agent interrupts it.

    ``min_speech_s``: shorter speech never interrupts (unless it says an interrupt word). With
    ``max_backchannel_s`` unset the decision is by time alone (speech that lasts ``min_speech_s``
    interrupts, the agent playing on meanwhile); set, the overlap is judged by its words, and
    speech longer than it interrupts without them. ``duck``: hold the reply's audio at the
    overlap's onset and tell the client to play its lead at ``duck_gain`` (0: pause).
    ``echo_overlap``: the share of an overlap's words found in the agent's recent words that
    makes it the agent's own echo (0: never).
    """

    min_speech_s: float = 0.3
    max_backchannel_s: float | None = None
    duck: bool = False
    duck_gain: float = 0.25
    backchannels: frozenset[str] = field(default_factory=lambda: words_of(DEFAULT_BACKCHANNELS))
    # Phrases, matched as whole words ("hold on", not "on").
    interrupts: frozenset[str] = field(default_factory=lambda: phrases_of(DEFAULT_INTERRUPTS))
    # A backchannel is at most this many words ("yeah yeah okay").
    max_backchannel_words: int = 4
    echo_overlap: float = 0.0
    # How many of the agent's last heard words an overlap is compared with.
    echo_window_words: int = 40

    def ignores(self, duration_s: float) -> bool:
        return duration_s < self.min_speech_s

    @property
    def by_words(self) -> bool:
        return self.max_backchannel_s is not None

    def judge(self, text: str, duration_s: float, agent_words: str) -> str:
        """What an overlap is: ``interrupt``, ``backchannel`` (or noise) or ``echo``."""
        words = normalize_transcript(text).split()
        padded = f" {' '.join(words)} "
        if any(f" {phrase} " in padded for phrase in self.interrupts):
            return INTERRUPT
        if not words or duration_s < self.min_speech_s:
            return BACKCHANNEL
        if len(words) <= self.max_backchannel_words and all(w in self.backchannels for w in words):
            return BACKCHANNEL
        if self.echo_overlap > 0 and self.is_echo(words, agent_words):
            return ECHO
        return INTERRUPT

    def is_echo(self, words: list[str], agent_words: str) -> bool:
        recent = set(normalize_transcript(agent_words).split()[-self.echo_window_words :])
        if not recent or not words:
            return False
        found = sum(1 for word in words if word in recent)
        return found / len(words) >= self.echo_overlap


class BargeInSteps:
    """Mixed into the turn machine, which owns the state these steps use."""

    reply: Reply | None
    _now: float
    _overlapping: str | None
    # An overlap judged harmless: its later transcripts and end of turn are not a user turn.
    _dismissed: str | None = None

    def _emit(self, action: act.Action) -> None:
        raise NotImplementedError

    def _set_timer(self, kind: str, at: float) -> None:
        raise NotImplementedError

    def _cancel_timer(self, kind: str) -> None:
        raise NotImplementedError

    def _pace(self, reply: Reply) -> None:
        raise NotImplementedError

    def _barge_in_now(self, decided_at: float) -> None:
        raise NotImplementedError

    def _policy_barge_in(self) -> BargeIn:
        raise NotImplementedError

    def _overlap_started(self, event: ev.SpeechStarted) -> None:
        """Speech began over the agent: duck and hold, and arm the deadline that interrupts."""
        policy = self._policy_barge_in()
        self._overlapping = event.utterance_id
        if event.utterance_id == self._dismissed:
            self._dismissed = None  # the user went on after the backchannel: judge it again
        if not policy.by_words:
            self._set_timer(BARGE_IN, self._now + policy.min_speech_s)
            return
        self._cancel_timer(OVERLAP_QUIET)
        self._set_timer(BARGE_IN, self._now + (policy.max_backchannel_s or 0.0))
        reply = self.reply
        if policy.duck and reply is not None and not reply.ducked:
            reply.ducked = True
            reply.playback.pause(self._now, policy.duck_gain)
            self._cancel_timer("playout")
            ducked = {"turn_id": reply.turn_id, "gain": policy.duck_gain}
            self._emit(act.SendEvent("ducked", ducked))
            self._emit(act.BargeInDecided(reply.attempt, "ducked", self._now))

    def _overlap_paused(self) -> None:
        self._cancel_timer(BARGE_IN)
        policy = self._policy_barge_in()
        if policy.by_words and self._overlapping is not None:
            # No words that decide it come by then: it was a sound, the agent goes on.
            self._set_timer(OVERLAP_QUIET, self._now + (policy.max_backchannel_s or 0.0))

    def _judges(self, event: ev.TranscriptReceived) -> bool:
        """A transcript of the overlap decides it. True when the transcript is consumed (a
        backchannel or echo: no user turn); False when it goes on as the user's words."""
        if event.utterance_id and event.utterance_id == self._dismissed:
            if event.final:
                self._dismissed = None
            return True
        policy = self._policy_barge_in()
        if not policy.by_words or not event.utterance_id or event.utterance_id != self._overlapping:
            return False
        reply = self.reply
        heard = reply.playback.heard_text(self._now) if reply is not None else ""
        verdict = policy.judge(event.text, event.duration_s, heard)
        if verdict == INTERRUPT:
            self._barge_in_now(self._now)
            return False
        self._dismiss(event.utterance_id, verdict, final=event.final)
        return True

    def _dismiss(self, utterance_id: str | None, verdict: str, *, final: bool = False) -> None:
        """The overlap was not an interruption: the reply goes on where it stopped."""
        self._cancel_timer(BARGE_IN)
        self._cancel_timer(OVERLAP_QUIET)
        self._overlapping = None
        self._dismissed = None if final else utterance_id
        self._emit(act.Log("info", f"an overlap over the agent was {verdict}: it goes on"))
        self._resume(verdict)

    def _resume(self, verdict: str) -> None:
        reply = self.reply
        if reply is None or not reply.ducked:
            return
        reply.ducked = False
        reply.playback.resume(self._now)
        self._emit(act.SendEvent("resumed", {"turn_id": reply.turn_id}))
        self._emit(act.BargeInDecided(reply.attempt, f"resumed:{verdict}", self._now))
        self._pace(reply)
