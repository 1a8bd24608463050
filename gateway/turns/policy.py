"""The turn-taking policies the machine applies: early thinking, barge-in, streaming or serial.

Each is a small value with the decisions it makes; the machine asks them and never branches
on settings itself. New turn-taking behaviour (an end-of-turn model, backchannel-aware
barge-in) replaces or extends one of these.
"""

from __future__ import annotations

from dataclasses import dataclass

from voice.text import normalize_transcript


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts say the same words (case, punctuation, digits aside)."""
    return normalize_transcript(a) == normalize_transcript(b)


@dataclass(frozen=True)
class EarlyThinking:
    """Start the reply on the text decoded at the user's first pause, held until confirmed."""

    enabled: bool = True

    def starts_on(self, text: str, at_pause: bool) -> bool:
        return self.enabled and at_pause and bool(text)

    def confirms(self, early_text: str, final_text: str) -> bool:
        """The final transcript confirms the held reply when it says the same words."""
        return same_words(early_text, final_text)


@dataclass(frozen=True)
class BargeIn:
    """Speech over the agent interrupts it once it has lasted ``min_speech_s``; a shorter
    sound (a cough, "mm-hm") is ignored, transcript and all."""

    min_speech_s: float = 0.3

    def ignores(self, duration_s: float) -> bool:
        return duration_s < self.min_speech_s


@dataclass(frozen=True)
class ReplyStyle:
    """Streaming (the product) or serial (the baseline voice pipelines had before streaming:
    the whole reply, then all of its speech, and only then any audio to the client)."""

    serial: bool = False

    @property
    def speaks_each_delta(self) -> bool:
        return not self.serial

    @property
    def holds_until_audio_done(self) -> bool:
        return self.serial

    @property
    def allows_early_start(self) -> bool:
        return not self.serial


@dataclass(frozen=True)
class TurnPolicy:
    session_id: str
    early_thinking: EarlyThinking = EarlyThinking()
    barge_in: BargeIn = BargeIn()
    style: ReplyStyle = ReplyStyle()
    # A stage that sends nothing for this long fails the reply (``stage_timeout``).
    stage_timeout_s: float = 30.0
