"""The turn-taking policies the machine applies: early thinking, barge-in, streaming or serial.

Each is a small value with the decisions it makes; the machine asks them and never branches
on settings itself. New turn-taking behaviour (an end-of-turn model, backchannel-aware
barge-in) replaces or extends one of these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.turns.barge_in import BargeIn
from gateway.turns.check_in import CheckIn
from gateway.turns.playout import Playout
from voice.text import normalize_transcript

__all__ = [
    "BargeIn",
    "CheckIn",
    "EarlyThinking",
    "EndOfTurn",
    "Playout",
    "ReplyStyle",
    "TurnPolicy",
]


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


# Last words after which an utterance is not over, whatever its punctuation.
OPEN_ENDINGS = frozenset(
    {"um", "uh", "er", "erm", "hmm", "and", "but", "or", "so", "because", "to", "a", "an"}
    | {"the", "of", "for", "with", "my", "your", "if", "that"}
)
END_OF_TURN_RULES = ("silence", "punctuation", "semantic")


@dataclass(frozen=True)
class EndOfTurn:
    """When the user's turn is over.

    ``silence``: when stt has heard ``STT_END_OF_TURN_MS`` of silence after the speech (the
    rule every turn used before). The other rules decide at the user's first pause
    (``STT_PAUSE_MS``) from the words decoded there, and end a turn that reads as complete after
    ``short_silence_ms`` of silence; one that does not waits for the long silence,
    ``max_silence_ms`` (sent to stt as the stream's end-of-turn silence):

    - ``punctuation``: complete when Whisper's own punctuation ends it ("." "?" "!", not "...",
      and not on a word that leaves it open, such as "and" or "um"): scores 1 ("?"), 0.8
      ("." "!") or 0.
    - ``semantic``: words that punctuation reads as complete are scored by the embedded
      language model (the probability that the message closes there, with Whisper's final mark
      taken off; services/llm/end_score.py), and the turn is complete when that score reaches
      ``threshold``. Without the model's score (none loaded, or it fails) punctuation decides.
    """

    rule: str = "silence"
    max_silence_ms: int = 1000
    short_silence_ms: int = 160
    threshold: float = 0.2

    @property
    def decides_at_pause(self) -> bool:
        return self.rule != "silence"

    @property
    def short_silence_s(self) -> float:
        return self.short_silence_ms / 1000

    def completeness(self, text: str) -> float:
        """How complete the words read as a turn by their punctuation, from 0 (open) to 1."""
        text = text.strip()
        words = normalize_transcript(text).split()
        if not words or words[-1] in OPEN_ENDINGS or text.endswith(("...", "…", ",", "-")):
            return 0.0
        if text.endswith("?"):
            return 1.0
        return 0.8 if text.endswith((".", "!")) else 0.0

    def wants_model_score(self, text: str) -> bool:
        """Whether the decision on these words waits for the language model's score."""
        return self.rule == "semantic" and self.completeness(text) > 0

    def decide(self, text: str, model_score: float | None = None) -> tuple[bool, float]:
        """Whether the words at the pause end the turn, and the score that decided it."""
        punctuation = self.completeness(text)
        if self.rule == "semantic" and model_score is not None and punctuation > 0:
            return model_score >= self.threshold, model_score
        return punctuation > 0 and punctuation >= self.threshold, punctuation


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
    barge_in: BargeIn = field(default_factory=BargeIn)
    style: ReplyStyle = ReplyStyle()
    end_of_turn: EndOfTurn = EndOfTurn()
    # A stage that sends nothing for this long fails the reply (``stage_timeout``).
    stage_timeout_s: float = 30.0
    playout: Playout = field(default_factory=Playout)
    check_in: CheckIn = field(default_factory=CheckIn)
