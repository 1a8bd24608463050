"""The barge-in bench's real-player client (bench/barge_in_player.py) and its scoring."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.barge_in_cases import CaseTrial, _score_backchannel, _score_interruption, summarize
from bench.barge_in_player import EchoPath, Event, Player

OUT = 24000


def player(echo: EchoPath | None = None) -> Player:
    return Player(ws=None, out_rate=OUT, echo=echo, origin=100.0)  # type: ignore[arg-type]


def tone(seconds: float, level: float = 10000.0) -> bytes:
    n = int(seconds * OUT)
    return (level * np.sin(2 * np.pi * 300 * np.arange(n) / OUT)).astype("<i2").tobytes()


def event(p: Player, at: float, **data: Any) -> None:
    p.events.append(Event(at, data))
    p._on_event(data, at)


def test_the_loudspeaker_plays_chunks_back_to_back_from_their_arrival() -> None:
    p = player()
    event(p, 100.0, type="audio_start", turn_id="t1")
    p._on_audio(tone(0.5), 100.5)
    p._on_audio(tone(0.5), 100.6)  # queued behind the first: plays 101.0-101.5
    windows = p.audible_windows("t1")
    assert abs(windows[0] - 100.5) < 0.011 and abs(windows[-1] - 101.49) < 0.011


def test_ducked_lowers_resumed_restores_and_interrupted_flushes() -> None:
    p = player()
    event(p, 100.0, type="audio_start", turn_id="t1")
    p._on_audio(tone(2.0), 100.0)
    event(p, 100.5, type="ducked", turn_id="t1", gain=0.0)
    event(p, 100.8, type="resumed", turn_id="t1")
    event(p, 101.2, type="interrupted", turn_id="t1")
    sound = np.abs(p.audible(int(2.5 * OUT)))
    assert sound[: int(0.5 * OUT)].max() > 5000
    assert sound[int(0.5 * OUT) : int(0.8 * OUT)].max() == 0
    assert sound[int(0.8 * OUT) : int(1.2 * OUT)].max() > 5000
    assert sound[int(1.2 * OUT) :].max() == 0
    assert p.played_samples("t1", 101.0) == OUT  # the ducked part played, silently


def test_the_microphone_hears_the_loudspeaker_late_and_lower() -> None:
    p = player(EchoPath(attenuation_db=20.0, delay_ms=100.0))
    event(p, 100.0, type="audio_start", turn_id="t1")
    p._on_audio(tone(1.0), 100.0)
    mic = np.concatenate([np.frombuffer(p._mic_frame(k), "<i2") for k in range(50)])
    assert np.abs(mic[:1500]).max() == 0  # before 100 ms
    level = np.sqrt(np.mean(mic[3200:16000].astype(np.float64) ** 2))
    assert abs(20 * np.log10(level / (10000 / np.sqrt(2))) + 20) < 1.0


def test_the_users_clip_is_placed_on_the_microphone() -> None:
    p = player()
    start, end = p.speak(np.full(1600, 1000, "<i2").tobytes(), 100.5)
    assert (start, end) == (100.5, 100.6)
    mic = np.concatenate([np.frombuffer(p._mic_frame(k), "<i2") for k in range(40)])
    assert (mic[8000:9600] == 1000).all() and not mic[:8000].any() and not mic[9600:].any()


def test_an_interruption_is_scored_from_the_onset() -> None:
    p = player()
    event(p, 100.0, type="audio_start", turn_id="t1")
    p._on_audio(tone(3.0), 100.0)
    event(p, 101.1, type="ducked", turn_id="t1", gain=0.0)
    event(p, 101.3, type="interrupted", turn_id="t1")
    trial = CaseTrial("interrupt", "on", "q")
    _score_interruption(p, trial, "t1", onset=101.0)
    assert trial.outcome == "interrupted" and trial.frames_after_interrupted == 0
    assert trial.onset_to_duck_ms == 100.0
    assert trial.onset_to_stop_ms is not None and 90 <= trial.onset_to_stop_ms <= 110
    # Audio of the turn that arrives after interrupted is played, as a client would: it counts.
    p._on_audio(tone(0.1), 101.4)
    _score_interruption(p, trial, "t1", onset=101.0)
    assert trial.frames_after_interrupted == 1
    assert trial.onset_to_stop_ms is not None and 490 <= trial.onset_to_stop_ms <= 510


def test_a_backchannel_is_kept_resumed_in_time_or_lost() -> None:
    outcomes = []
    for resumed_at in (None, 101.6, 102.0):
        p = player()
        event(p, 100.0, type="audio_start", turn_id="t1")
        p._on_audio(tone(4.0), 100.0)
        if resumed_at is not None:
            event(p, 101.1, type="ducked", turn_id="t1", gain=0.2)
            event(p, resumed_at, type="resumed", turn_id="t1")
        trial = CaseTrial("backchannel", "on", "q")
        _score_backchannel(p, trial, "t1", overlap_end=101.4)
        outcomes.append(trial.outcome)
    assert outcomes == ["kept", "resumed", "lost"]
    table = summarize([CaseTrial("backchannel", "on", "q", outcome=o) for o in outcomes])
    assert table["backchannel (echo cancel on)"]["answer_kept"] == "2/3"
