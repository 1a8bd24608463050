"""The gateway's arrival clock: stt stream times mapped to when that audio reached the gateway,
one epoch per stt stream (a reopened stream counts its time from 0 again)."""

from __future__ import annotations

import time

import pytest

from gateway.arrival import ArrivalClock

pytestmark = pytest.mark.unit

RATE = 16000
FRAME = RATE // 50  # 20 ms


def feed(clock: ArrivalClock, frames: int, start_at: float) -> None:
    """``frames`` 20 ms frames, frame k arriving at ``start_at + k * 0.02``."""
    for k in range(frames):
        clock.record(FRAME, start_at + k * 0.02)


def test_a_stream_time_maps_to_the_arrival_of_the_frame_that_holds_it() -> None:
    clock = ArrivalClock(RATE)
    clock.restart(RATE)
    feed(clock, 100, start_at=50.0)
    assert clock.arrival_time(0.0) == 50.0
    assert clock.arrival_time(0.5) == pytest.approx(50.0 + 0.48)  # frame 24 ends at 0.5 s
    assert clock.arrival_time(0.51) == pytest.approx(50.0 + 0.50)


def test_a_reopened_stream_counts_from_its_own_first_sample() -> None:
    clock = ArrivalClock(RATE)
    clock.restart(RATE)
    feed(clock, 500, start_at=100.0)  # 10 s of the first stream
    clock.restart(RATE)  # stt restarted: the new stream's time 0 is the next sample
    feed(clock, 100, start_at=130.0)
    # 1 s into the new stream is 1 s after its first frame, not 1 s into the session.
    assert clock.arrival_time(1.0) == pytest.approx(130.0 + 0.98)
    assert clock.epoch == 2


def test_a_time_not_yet_arrived_maps_to_now() -> None:
    clock = ArrivalClock(RATE)
    clock.restart(RATE)
    feed(clock, 10, start_at=0.0)
    before = time.perf_counter()
    assert clock.arrival_time(5.0) >= before


def test_the_rate_of_the_reopened_stream_is_used() -> None:
    clock = ArrivalClock(RATE)
    clock.restart(48000)
    for k in range(50):
        clock.record(960, 10.0 + k * 0.02)
    assert clock.arrival_time(0.5) == pytest.approx(10.0 + 0.48)
