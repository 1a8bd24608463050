"""Endpointer: speech start, pause, end of turn, hysteresis and the maximum utterance."""

from __future__ import annotations

import pytest

from services.stt.endpointing import HYSTERESIS, Boundary, EndpointConfig, Endpointer
from services.stt.engine import SpeechEventKind

pytestmark = pytest.mark.unit

WINDOW_S = 0.032  # 512 samples at 16 kHz, what the VAD sees
CONFIG = EndpointConfig(
    threshold=0.5,
    min_speech_s=3 * WINDOW_S,
    pause_s=5 * WINDOW_S,
    end_of_turn_s=15 * WINDOW_S,
    max_utterance_s=2.0,
)
VOICED, SILENT = 0.9, 0.05
STARTED, PAUSE, END = (
    SpeechEventKind.SPEECH_STARTED,
    SpeechEventKind.PAUSE,
    SpeechEventKind.END_OF_TURN,
)


class Feeder:
    """Feeds consecutive windows and remembers each boundary with its window index."""

    def __init__(self, config: EndpointConfig = CONFIG) -> None:
        self.endpointer = Endpointer(config)
        self.index = 0
        self.boundaries: list[tuple[int, Boundary]] = []

    def feed(self, probability: float, count: int = 1) -> list[Boundary]:
        found = []
        for _ in range(count):
            boundary = self.endpointer.update(probability, self.index * WINDOW_S, WINDOW_S)
            if boundary is not None:
                self.boundaries.append((self.index, boundary))
                found.append(boundary)
            self.index += 1
        return found

    @property
    def kinds(self) -> list[SpeechEventKind]:
        return [boundary.kind for _, boundary in self.boundaries]


def test_silence_produces_nothing() -> None:
    feeder = Feeder()
    assert feeder.feed(SILENT, 100) == []
    assert not feeder.endpointer.in_speech


def test_speech_starts_once_min_speech_is_voiced() -> None:
    feeder = Feeder()
    feeder.feed(SILENT, 10)
    assert feeder.feed(VOICED, 2) == []
    assert not feeder.endpointer.in_speech
    [started] = feeder.feed(VOICED)
    assert started.kind is STARTED
    assert started.time_s == pytest.approx(13 * WINDOW_S)
    # Speech began where the voiced run began, not where it was confirmed.
    assert started.speech_time_s == pytest.approx(10 * WINDOW_S)
    assert feeder.endpointer.speech_start_s == pytest.approx(10 * WINDOW_S)
    assert feeder.endpointer.in_speech


def test_a_blip_shorter_than_min_speech_does_not_start_speech() -> None:
    feeder = Feeder()
    feeder.feed(VOICED, 2)
    feeder.feed(SILENT, 1)
    feeder.feed(VOICED, 2)
    assert feeder.boundaries == []
    # The run restarts after a silent window: the start is the second run's.
    [started] = feeder.feed(VOICED)
    assert started.speech_time_s == pytest.approx(3 * WINDOW_S)


def test_zero_min_speech_starts_on_the_first_voiced_window() -> None:
    config = EndpointConfig(0.5, 0.0, 5 * WINDOW_S, 15 * WINDOW_S, 2.0)
    feeder = Feeder(config)
    feeder.feed(SILENT, 4)
    [started] = feeder.feed(VOICED)
    assert started.kind is STARTED
    assert started.speech_time_s == pytest.approx(4 * WINDOW_S)


def test_pause_after_pause_s_of_silence_then_end_of_turn() -> None:
    feeder = Feeder()
    feeder.feed(VOICED, 10)
    assert feeder.feed(SILENT, 4) == []
    [pause] = feeder.feed(SILENT)
    assert pause.kind is PAUSE
    assert pause.time_s == pytest.approx(15 * WINDOW_S)
    assert pause.speech_time_s == pytest.approx(10 * WINDOW_S)
    # One pause per silence, however long it lasts.
    assert feeder.feed(SILENT, 9) == []
    [end] = feeder.feed(SILENT)
    assert end.kind is END
    assert end.time_s == pytest.approx(25 * WINDOW_S)
    assert end.speech_time_s == pytest.approx(10 * WINDOW_S)
    assert feeder.endpointer.last_voiced_end_s == pytest.approx(10 * WINDOW_S)
    assert not feeder.endpointer.in_speech
    assert feeder.feed(SILENT, 50) == []


def test_speech_resumed_after_a_pause_cancels_the_end_of_turn() -> None:
    feeder = Feeder()
    feeder.feed(VOICED, 10)
    feeder.feed(SILENT, 10)  # a pause, not yet the end of the turn
    [resumed] = feeder.feed(VOICED, 3)
    assert resumed.kind is SpeechEventKind.SPEECH_RESUMED
    assert resumed.time_s == pytest.approx(21 * WINDOW_S)
    assert [b.kind for b in feeder.feed(SILENT, 14)] == [PAUSE]  # not the end of the turn
    assert feeder.kinds == [STARTED, PAUSE, SpeechEventKind.SPEECH_RESUMED, PAUSE]
    [end] = feeder.feed(SILENT)
    assert end.kind is END
    # Measured from the resumed speech, which ended at window 23.
    assert end.speech_time_s == pytest.approx(23 * WINDOW_S)
    assert end.time_s == pytest.approx(38 * WINDOW_S)


def test_a_single_voiced_window_resets_the_silence_count() -> None:
    feeder = Feeder()
    feeder.feed(VOICED, 5)
    for _ in range(5):
        feeder.feed(SILENT, 4)
        feeder.feed(VOICED, 1)
    assert feeder.kinds == [STARTED]


def test_hysteresis_keeps_speech_going_between_the_two_thresholds() -> None:
    between = CONFIG.threshold - HYSTERESIS / 2
    feeder = Feeder()
    # Not enough to start speech...
    assert feeder.feed(between, 20) == []
    feeder.feed(VOICED, 3)
    # ...but enough to stay in it: no pause, no end of turn.
    assert feeder.feed(between, 30) == []
    assert feeder.endpointer.in_speech
    assert feeder.endpointer.last_voiced_end_s == pytest.approx(53 * WINDOW_S)


def test_below_the_lower_threshold_counts_as_silence() -> None:
    below = CONFIG.threshold - HYSTERESIS - 0.01
    feeder = Feeder()
    feeder.feed(VOICED, 3)
    feeder.feed(below, 15)
    assert feeder.kinds == [STARTED, PAUSE, END]


def test_max_utterance_forces_the_end_of_turn() -> None:
    feeder = Feeder()
    # 2.0 s is 62.5 windows: the 63rd window (ending at 2.016 s) is the first past the limit.
    feeder.feed(VOICED, 62)
    assert feeder.kinds == [STARTED]
    [end] = feeder.feed(VOICED)
    assert end.kind is END
    assert end.time_s == pytest.approx(63 * WINDOW_S)
    assert end.speech_time_s == pytest.approx(63 * WINDOW_S)
    assert not feeder.endpointer.in_speech


def test_voice_after_a_forced_end_needs_min_speech_to_start_again() -> None:
    feeder = Feeder()
    feeder.feed(VOICED, 63)
    assert feeder.kinds == [STARTED, END]
    assert feeder.feed(VOICED, 2) == []
    [started] = feeder.feed(VOICED)
    assert started.kind is STARTED
    assert started.speech_time_s == pytest.approx(63 * WINDOW_S)


def test_force_end_ends_the_utterance_now() -> None:
    feeder = Feeder()
    feeder.feed(VOICED, 6)
    feeder.feed(SILENT, 2)
    end = feeder.endpointer.force_end(now_s=1.25)
    assert end is not None
    assert (end.kind, end.time_s) == (END, 1.25)
    assert end.speech_time_s == pytest.approx(6 * WINDOW_S)
    assert not feeder.endpointer.in_speech
    assert feeder.endpointer.force_end(now_s=2.0) is None


def test_force_end_outside_speech_returns_nothing() -> None:
    feeder = Feeder()
    assert feeder.endpointer.force_end(now_s=0.5) is None
    feeder.feed(VOICED, 2)  # a run too short to be speech
    assert feeder.endpointer.force_end(now_s=0.5) is None
