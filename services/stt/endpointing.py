"""Turn endpointing from voice activity: when speech starts, pauses, and when the turn ends.

A pure state machine fed one VAD window at a time, so it is easy to test and costs nothing.
Hysteresis (a lower threshold to leave speech than to enter it) keeps it from flapping on the
quiet ends of words.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.stt.engine import SpeechEventKind

HYSTERESIS = 0.15


@dataclass(frozen=True)
class EndpointConfig:
    threshold: float
    min_speech_s: float
    pause_s: float
    end_of_turn_s: float
    max_utterance_s: float


@dataclass(frozen=True)
class Boundary:
    kind: SpeechEventKind
    # Stream time of the window that produced the event.
    time_s: float
    # For SPEECH_STARTED: where the speech began; for PAUSE / END_OF_TURN: where it last ended.
    speech_time_s: float


class Endpointer:
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.in_speech = False
        self._voiced_run_s = 0.0
        self._run_start_s = 0.0
        self._silence_s = 0.0
        self._paused = False
        self._speech_start_s = 0.0
        self._last_voiced_end_s = 0.0

    @property
    def speech_start_s(self) -> float:
        return self._speech_start_s

    @property
    def last_voiced_end_s(self) -> float:
        return self._last_voiced_end_s

    @property
    def silence_s(self) -> float:
        """How long the current silence inside speech has lasted (0 while voiced)."""
        return self._silence_s

    def update(self, probability: float, window_start_s: float, window_s: float) -> Boundary | None:
        """Feed one window's speech probability; returns the boundary it crosses, if any."""
        window_end_s = window_start_s + window_s
        if not self.in_speech:
            return self._while_silent(probability, window_start_s, window_end_s, window_s)
        return self._while_speaking(probability, window_end_s, window_s)

    def force_end(self, now_s: float) -> Boundary | None:
        """End the utterance now (a flush, or the maximum length reached)."""
        if not self.in_speech:
            return None
        self._reset()
        return Boundary(SpeechEventKind.END_OF_TURN, now_s, self._last_voiced_end_s)

    def _while_silent(
        self, probability: float, start_s: float, end_s: float, window_s: float
    ) -> Boundary | None:
        if probability < self.config.threshold:
            self._voiced_run_s = 0.0
            return None
        if self._voiced_run_s == 0.0:
            self._run_start_s = start_s
        self._voiced_run_s += window_s
        self._last_voiced_end_s = end_s
        if self._voiced_run_s + 1e-9 < self.config.min_speech_s:
            return None
        self.in_speech = True
        self._silence_s = 0.0
        self._paused = False
        self._speech_start_s = self._run_start_s
        return Boundary(SpeechEventKind.SPEECH_STARTED, end_s, self._run_start_s)

    def _while_speaking(self, probability: float, end_s: float, window_s: float) -> Boundary | None:
        voiced = probability >= self.config.threshold - HYSTERESIS
        if voiced:
            self._silence_s = 0.0
            resumed = self._paused
            self._paused = False
            self._last_voiced_end_s = end_s
            if end_s - self._speech_start_s >= self.config.max_utterance_s:
                return self.force_end(end_s)
            if resumed:
                return Boundary(SpeechEventKind.SPEECH_RESUMED, end_s, end_s - window_s)
            return None
        self._silence_s += window_s
        if self._silence_s + 1e-9 >= self.config.end_of_turn_s:
            self._reset()
            return Boundary(SpeechEventKind.END_OF_TURN, end_s, self._last_voiced_end_s)
        if not self._paused and self._silence_s + 1e-9 >= self.config.pause_s:
            self._paused = True
            return Boundary(SpeechEventKind.PAUSE, end_s, self._last_voiced_end_s)
        return None

    def _reset(self) -> None:
        self.in_speech = False
        self._voiced_run_s = 0.0
        self._silence_s = 0.0
        self._paused = False
