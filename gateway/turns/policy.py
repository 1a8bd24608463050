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


# Last words after which an utterance is not over, whatever its punctuation.
OPEN_ENDINGS = frozenset(
    {"um", "uh", "er", "erm", "hmm", "and", "but", "or", "so", "because", "to", "a", "an"}
    | {"the", "of", "for", "with", "my", "your", "if", "that"}
)
END_OF_TURN_RULES = ("silence", "punctuation")


@dataclass(frozen=True)
class EndOfTurn:
    """When the user's turn is over.

    ``silence``: when stt has heard ``STT_END_OF_TURN_MS`` of silence after the speech (the
    rule every turn used before). ``punctuation``: also at the first pause (``STT_PAUSE_MS``),
    when the text decoded there reads as a complete turn by Whisper's own punctuation (it ends
    in ".", "?" or "!", not "...", and not on a word that leaves it open, such as "and" or
    "um"); an utterance that does not read as complete waits for a longer silence, at most
    ``max_silence_ms`` (sent to stt as the stream's end-of-turn silence).
    """

    rule: str = "silence"
    max_silence_ms: int = 1000
    threshold: float = 0.5

    @property
    def decides_at_pause(self) -> bool:
        return self.rule != "silence"

    def completeness(self, text: str) -> float:
        """How complete the words read as a turn, from 0 (open) to 1 (a question)."""
        text = text.strip()
        words = normalize_transcript(text).split()
        if not words or words[-1] in OPEN_ENDINGS or text.endswith(("...", "…", ",", "-")):
            return 0.0
        if text.endswith("?"):
            return 1.0
        return 0.8 if text.endswith((".", "!")) else 0.0

    def is_complete(self, text: str) -> tuple[bool, float]:
        score = self.completeness(text)
        return score >= self.threshold, score


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
    end_of_turn: EndOfTurn = EndOfTurn()
    # A stage that sends nothing for this long fails the reply (``stage_timeout``).
    stage_timeout_s: float = 30.0
